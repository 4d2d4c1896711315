"""Alert pieces that need no services: webhook signatures, rule parameters, the EPCIS event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.event import alert_event
from alerts.rules import RuleError, check_params
from alerts.webhook import WebhookSignatureError, sign, verify
from tracehub.epcis.schema import validate_document


def test_webhook_signature_round_trip_and_refusals() -> None:
    body = b'{"change":"opened"}'
    header = sign("s3cret", body, timestamp=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify("s3cret", body, header, now=1_700_000_100) == 1_700_000_000
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify("s3cret", body + b" ", header, now=1_700_000_100)
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify("other", body, header, now=1_700_000_100)
    with pytest.raises(WebhookSignatureError, match="more than 300 s"):
        verify("s3cret", body, header, now=1_700_000_301)  # a replay, later
    with pytest.raises(WebhookSignatureError, match="no TraceHub-Signature"):
        verify("s3cret", body, None)
    with pytest.raises(WebhookSignatureError, match="numeric timestamp"):
        verify("s3cret", body, "v1=abc")
    # A receiver rotating secrets accepts any of several v1 values.
    rotated = header + ",v1=" + "0" * 64
    assert verify("s3cret", body, rotated, now=1_700_000_000) == 1_700_000_000


# A fixed known-answer vector for the webhook signature, computed outside Python with OpenSSL
# by the scheme in alerts/webhook.py and docs/alerts.md (HMAC-SHA256 keyed with the secret, over
# the ASCII timestamp, a full stop and the raw body bytes; the body holds a UTF-8 "°"):
#   printf '%s' '1764000000.{"change":"opened","alert":{"alert_id":"42",'\
#   '"kind":"temperature_excursion","detail":"12.5 °C"}}' \
#     | openssl dgst -sha256 -hmac 'whsec_test_vector_0001'
#   SHA2-256(stdin)= 6e9366f6ce5d0be73aeb2dc23f548f6d814ceb5a7d923c7105217866cbbab3b5
VECTOR_SECRET = "whsec_test_vector_0001"
VECTOR_TIMESTAMP = 1_764_000_000
VECTOR_BODY = (
    '{"change":"opened","alert":{"alert_id":"42",'
    '"kind":"temperature_excursion","detail":"12.5 °C"}}'
).encode()
VECTOR_HEADER = "t=1764000000,v1=6e9366f6ce5d0be73aeb2dc23f548f6d814ceb5a7d923c7105217866cbbab3b5"


def test_webhook_signature_matches_the_known_answer_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_BODY, timestamp=VECTOR_TIMESTAMP) == VECTOR_HEADER
    assert verify(VECTOR_SECRET, VECTOR_BODY, VECTOR_HEADER, now=VECTOR_TIMESTAMP) == (
        VECTOR_TIMESTAMP
    )
    last = VECTOR_HEADER[-1]
    altered = VECTOR_HEADER[:-1] + ("0" if last != "0" else "1")
    with pytest.raises(WebhookSignatureError, match="no v1 signature matches"):
        verify(VECTOR_SECRET, VECTOR_BODY, altered, now=VECTOR_TIMESTAMP)


def test_rule_params_are_checked_per_kind() -> None:
    assert check_params("temperature_excursion", {"min": 2, "max": 8, "grace_s": 600}) == {
        "min": 2.0,
        "max": 8.0,
        "grace_s": 600.0,
    }
    assert check_params("humidity_excursion", {}) == {"grace_s": 0.0}  # the product's band
    assert check_params("unexpected_location", {"expected_locations": ["b", "a", "a"]}) == {
        "expected_locations": ["a", "b"]
    }
    for kind, params, message in [
        ("temperature_excursion", {"min": 8, "max": 2}, "below"),
        ("temperature_excursion", {"min": "2"}, "must be a number"),
        ("temperature_excursion", {"grace_s": -1}, "negative"),
        ("sensor_silent", {}, "silent_s is required"),
        ("custody_gap", {"gap_s": 0}, "positive"),
        ("custody_gap", {"gap_s": 5, "extra": 1}, "take only"),
        ("unexpected_location", {"expected_locations": []}, "non-empty"),
        ("fire", {}, "kind must be one of"),
    ]:
        with pytest.raises(RuleError, match=message):
            check_params(kind, params)


@pytest.mark.parametrize(
    ("kind", "detail", "exception"),
    [
        ("temperature_excursion", {"value": 9.5, "min": 2.0, "max": 8.0}, "ALARM_CONDITION"),
        ("sensor_silent", {"summary": "no reading"}, "ERROR_CONDITION"),
        ("unexpected_location", {"summary": "wrong dock"}, "ALARM_CONDITION"),
    ],
)
def test_alert_event_is_valid_epcis_with_a_sensor_alert(
    kind: str, detail: dict[str, object], exception: str
) -> None:
    event = alert_event(
        event_id="urn:uuid:6f1c8a52-1d0e-4c55-9d38-0b1b5f3b2a11",
        kind=kind,
        started_at=datetime(2026, 11, 22, 3, 4, 5, 678000, tzinfo=UTC),
        lots=[("09506000134352", "LOT 7/A")],
        device_id="logger-1",
        detail=detail,
        location="0614141000012",
    )
    document = {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-22T03:04:05.678Z",
        "epcisBody": {"eventList": [event]},
    }
    validate_document(document)  # the GS1 EPCIS 2.0 JSON schema
    report = event["sensorElementList"][0]["sensorReport"][0]
    assert report["exception"] == exception
    assert event["quantityList"] == [
        {"epcClass": "https://id.gs1.org/01/09506000134352/10/LOT%207%2FA"}
    ]
    assert event["readPoint"] == {"id": "https://id.gs1.org/414/0614141000012"}
    assert event["eventTime"] == "2026-11-22T03:04:05.678Z"
