"""Commerce errors: the root, and one class per kind of refusal (tracehub.errors gives the kinds,
which the API answers with statuses in one place, api/errors.py)."""

from __future__ import annotations

from tracehub.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    TraceHubError,
    UnprocessableError,
    UpstreamError,
)

__all__ = [
    "CommerceConflictError",
    "CommerceError",
    "CommerceForbiddenError",
    "CommerceInvalidError",
    "CommerceNotFoundError",
    "PaymentCaptureError",
]


class CommerceError(TraceHubError):
    """Root of every error commerce raises on purpose."""


class CommerceInvalidError(CommerceError, UnprocessableError):
    """The request is malformed or refers to something unusable."""


class CommerceNotFoundError(CommerceError, NotFoundError):
    """No such rfq, quote, order, payment or shipment."""


class CommerceForbiddenError(CommerceError, ForbiddenError):
    """The caller's organisation is not a party to this."""


class CommerceConflictError(CommerceError, ConflictError):
    """The request clashes with the current state."""


class PaymentCaptureError(CommerceError, UpstreamError):
    """The payment provider refused or failed to capture an authorized payment."""
