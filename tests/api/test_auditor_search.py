"""The auditor's searches: batch id/root/tx prefixes, device, event id or hash prefix, lot and
time range, on a migrated schema with real rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.api import api_harness
from tracehub.config import Settings

pytestmark = pytest.mark.integration

HASH = "ni:///sha-256;" + "ab12" * 16 + "?ver=CBV2.0"


def test_searches_by_prefix_device_event_lot_and_time(stack: Settings) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with api_harness(stack) as h:
        with h.connect() as conn:
            for batch, hours in (("b-old-0001", 48), ("b-new-0002", 1)):
                conn.execute(
                    "INSERT INTO batches (batch_id, sealed_at, count, first_ts, last_ts, devices,"
                    " root) VALUES (%s, %s, 1, %s, %s, 1, %s)",
                    (
                        batch,
                        now,
                        now - timedelta(hours=hours),
                        now - timedelta(hours=hours),
                        "cd" * 32,
                    ),
                )
            conn.execute(
                "INSERT INTO readings (device_id, seq, ts, received_at, kind, data, prev_hash,"
                " reading_hash, envelope, certificate_sha256, batch_id, batch_index) VALUES"
                " ('probe-9', 1, %s, %s, 'environment', '{}', %s, %s, 'x', %s, 'b-new-0002', 0)",
                (now - timedelta(hours=1), now, "0" * 64, "1" * 64, "a" * 64),
            )
            conn.execute(
                "INSERT INTO epcis_events (event_id, event_type, event_time, event_json,"
                " event_hash, hash_hex, subjects, source) VALUES (%s, 'ObjectEvent', %s, '{}',"
                " %s, %s, %s, 'test')",
                (HASH, now - timedelta(hours=2), HASH, "ab12" * 16, ["lot:09506000134352/LOT-7"]),
            )
            conn.commit()
        admin = h.headers("admin")

        def ids(path: str, key: str, **params: str) -> list[str]:
            reply = h.client.get(path, params=params, headers=admin)
            assert reply.status_code == 200, reply.text
            return [row[key] for row in reply.json()]

        batches = "/auditor/batches"
        assert ids(batches, "batch_id", q="b-new") == ["b-new-0002"]  # a prefix finds it
        assert ids(batches, "batch_id", q="new") == []  # the middle of an id does not
        assert sorted(ids(batches, "batch_id", q="cdcd")) == ["b-new-0002", "b-old-0001"]
        assert ids(batches, "batch_id", device="probe-9") == ["b-new-0002"]
        since = (now - timedelta(hours=3)).isoformat()
        assert ids(batches, "batch_id", since=since) == ["b-new-0002"]
        until = (now - timedelta(hours=24)).isoformat()
        assert ids(batches, "batch_id", until=until) == ["b-old-0001"]

        events = "/auditor/events"
        assert ids(events, "event_id", q="ni:///sha-256;ab12ab") == [HASH]
        assert ids(events, "event_id", q="AB12AB12") == [HASH]  # the bare hex, any case
        assert ids(events, "event_id", q="ni:///sha-256;ff") == []
        assert ids(events, "event_id", lot="LOT-7") == [HASH]
        assert ids(events, "event_id", lot="LOT") == []  # a lot number is matched whole
        assert ids(events, "event_id", since=since) == [HASH]
        assert ids(events, "event_id", until=until) == []
        assert ids("/auditor/devices", "device_id", q="%") == []  # text, not a LIKE pattern

        # A device outside an auditor's engagement is not found (its batches are not told).
        auditor = h.headers("auditor", org_id=h.organisation("audit"))
        reply = h.client.get(batches, params={"device": "probe-9"}, headers=auditor)
        assert reply.status_code == 404
