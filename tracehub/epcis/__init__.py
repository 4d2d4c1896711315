"""EPCIS 2.0 in TraceHub: validation, CBV 2.0 event hashes, capture and query, anchoring, proofs.

The names below are the module's stable API (other parts code against them); see docs/epcis.md.
"""

from __future__ import annotations

from tracehub.epcis.errors import EPCISValidationError
from tracehub.epcis.hashing import event_hash
from tracehub.epcis.proof import EventProof, event_proof
from tracehub.epcis.store import (
    CapturedEvent,
    EventQuery,
    capture_events,
    event_by_id,
    query_events,
)

__all__ = [
    "CapturedEvent",
    "EPCISValidationError",
    "EventProof",
    "EventQuery",
    "capture_events",
    "event_by_id",
    "event_hash",
    "event_proof",
    "query_events",
]
