"""The root of the edge agent's errors; each concrete one also takes a kind from tracehub.errors
(the agent imports nothing of the hub but the kernel)."""

from __future__ import annotations

from tracehub.errors import TraceHubError

__all__ = ["EdgeError"]


class EdgeError(TraceHubError):
    """Root of every error the edge agent (readers, sensors, spool, configuration) raises."""
