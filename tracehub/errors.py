"""The root of every error TraceHub raises on purpose, and the kinds of failure they are.

Each package has one root exception deriving from :class:`TraceHubError` (``IngestError``,
``AlertsError``, ``CommerceError``, ...). A concrete error also takes one of the kinds below as a
base, which says what went wrong independently of any transport: the API maps kinds to HTTP
statuses in one place (api/errors.py), the CLI to exit codes, so no router translates errors
itself.
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "ForbiddenError",
    "InvalidError",
    "NotFoundError",
    "RateLimitedError",
    "TooLargeError",
    "TraceHubError",
    "UnauthorizedError",
    "UnavailableError",
    "UnprocessableError",
    "UpstreamError",
]


class TraceHubError(Exception):
    """Root of every error TraceHub raises on purpose; the message says what and why."""


class InvalidError(TraceHubError, ValueError):
    """The input is malformed: it can never be accepted as it is."""


class UnprocessableError(InvalidError):
    """The input is well-formed but refers to something unusable or breaks a rule."""


class TooLargeError(InvalidError):
    """The input is larger than the limit stated in the message."""


class NotFoundError(TraceHubError, LookupError):
    """The thing asked for does not exist (or is not visible to the caller)."""


class UnauthorizedError(TraceHubError):
    """The caller is not authenticated."""


class ForbiddenError(TraceHubError):
    """The caller is authenticated but may not do this."""


class ConflictError(TraceHubError):
    """The request clashes with the current state (a transition, a duplicate, a taken id)."""


class RateLimitedError(TraceHubError):
    """The caller tried too often; `retry_after_s` says when trying again may be answered."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnavailableError(TraceHubError):
    """A service the hub depends on (ledger, IPFS, database) cannot be reached now; try again."""


class UpstreamError(TraceHubError):
    """A service the hub depends on answered, but wrongly (refused, malformed, inconsistent)."""
