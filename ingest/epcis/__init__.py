"""EPCIS storage: capture and query, anchoring of event batches, readings shown as events."""

from __future__ import annotations

from ingest.epcis.store import (
    CapturedEvent,
    CaptureNotFoundError,
    CaptureTooLargeError,
    EPCISQueryError,
    EventNotFoundError,
    EventQuery,
    capture_events,
    event_by_id,
    query_events,
)

__all__ = [
    "CaptureNotFoundError",
    "CaptureTooLargeError",
    "CapturedEvent",
    "EPCISQueryError",
    "EventNotFoundError",
    "EventQuery",
    "capture_events",
    "event_by_id",
    "query_events",
]
