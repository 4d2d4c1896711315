"""The root of ingest's errors; each concrete one also takes a kind from tracehub.errors."""

from __future__ import annotations

from tracehub.errors import TraceHubError

__all__ = ["IngestError"]


class IngestError(TraceHubError):
    """Root of every error ingest (storage, EPCIS, inspections, bundles) raises on purpose."""
