"""The simple event query's parameters, as (name, value) pairs, read into an EventQuery.

Shared by the REST query (api/epcis.py, the request's query string) and named queries
(ingest/epcis/subscriptions.py, the stored parameters), so both refuse the same input the same
way: 400 naming the parameter, never a silent empty answer.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime

from ingest.epcis.query_params import EXTRA_PARAMS, check_standard_names, extra_filters
from ingest.epcis.store import EVENT_TYPES, EPCISQueryError, EventQuery

__all__ = [
    "DEFAULT_PER_PAGE",
    "MAX_PER_PAGE",
    "decode_token",
    "encode_token",
    "no_nul",
    "parse_pairs",
]

MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 30
#: The standard's simple-event-query parameters we implement (anything else is refused, so a
#: misspelt filter cannot silently match everything).
LIST_PARAMS = {
    "eventType",
    "MATCH_epc",
    "MATCH_anyEPC",
    "EQ_bizStep",
    "EQ_readPoint",
    "EQ_bizLocation",
    "EQ_disposition",
}
TIME_PARAMS = {"GE_eventTime", "LT_eventTime", "GE_recordTime", "LT_recordTime"}
OTHER_PARAMS = {"perPage", "nextPageToken", "includeReadings"}


def _time(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise EPCISQueryError(f"{name}: not an ISO 8601 date-time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise EPCISQueryError(f"{name}: needs a time zone offset (e.g. Z)")
    return parsed


def encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, number = text.partition(":")
        seq = int(number)
        if prefix != "seq" or not 0 <= seq < 2**63:
            raise ValueError(text)
        return seq
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise EPCISQueryError("nextPageToken: not a token this server issued") from exc


def no_nul(name: str, value: str) -> str:
    if "\x00" in value:
        raise EPCISQueryError(f"{name}: contains a NUL character")
    return value


def parse_pairs(
    pairs: Sequence[tuple[str, str]], *, allowed_extra: frozenset[str] = frozenset()
) -> tuple[EventQuery, bool]:
    """The EventQuery of the parameters and whether readings are asked for (400 on anything
    malformed). ``allowed_extra`` names parameters the caller handles itself (skipped here)."""
    pairs = [(k, v) for k, v in pairs if k not in allowed_extra]
    for name, value in pairs:
        no_nul(name, value)

    def values(name: str) -> list[str]:
        out: list[str] = []
        for key, item in pairs:
            if key == name:
                out.extend(part for part in (p.strip() for p in item.split(",")) if part)
        return out

    def first(name: str) -> str | None:
        return next((v for k, v in pairs if k == name), None)

    names = list(dict.fromkeys(k for k, _ in pairs))
    unknown = set(names) - LIST_PARAMS - TIME_PARAMS - OTHER_PARAMS - EXTRA_PARAMS
    if unknown:
        check_standard_names(sorted(unknown))  # a standard one we do not serve: named as such
        raise EPCISQueryError(f"{sorted(unknown)[0]}: unsupported query parameter")
    event_types = values("eventType")
    for event_type in event_types:
        if event_type not in EVENT_TYPES:
            raise EPCISQueryError(f"eventType: {event_type!r} is not one of {list(EVENT_TYPES)}")
    times = {name: _time(name, v) for name in TIME_PARAMS if (v := first(name)) is not None}
    per_page_text = first("perPage") or str(DEFAULT_PER_PAGE)
    try:
        per_page = int(per_page_text)
    except ValueError as exc:
        raise EPCISQueryError(f"perPage: not an integer: {per_page_text!r}") from exc
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise EPCISQueryError(f"perPage: must be between 1 and {MAX_PER_PAGE}")
    token = first("nextPageToken")
    include = (first("includeReadings") or "false").lower()
    if include not in ("true", "false"):
        raise EPCISQueryError("includeReadings: must be true or false")
    query = EventQuery(
        event_types=event_types,
        ge_event_time=times.get("GE_eventTime"),
        lt_event_time=times.get("LT_eventTime"),
        ge_record_time=times.get("GE_recordTime"),
        lt_record_time=times.get("LT_recordTime"),
        match_direct_epcs=values("MATCH_epc"),
        match_epcs=values("MATCH_anyEPC"),
        eq_biz_step=values("EQ_bizStep"),
        eq_read_point=values("EQ_readPoint"),
        eq_biz_location=values("EQ_bizLocation"),
        eq_disposition=values("EQ_disposition"),
        limit=per_page + 1,  # one more tells whether there is a next page
        after_seq=decode_token(token) if token else None,
        extra=extra_filters(values, names),
    )
    return query, include == "true"
