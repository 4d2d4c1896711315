"""The genealogy graph of identifiers, kept from captured EPCIS events; traces and recalls."""

from __future__ import annotations

from ingest.genealogy.ids import canonical, parse_query_id
from ingest.genealogy.store import sync
from ingest.genealogy.trace import Trace, TraceScope, trace

__all__ = ["Trace", "TraceScope", "canonical", "parse_query_id", "sync", "trace"]
