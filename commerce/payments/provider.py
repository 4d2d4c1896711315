"""What a payment provider does for commerce, and how its failures are classified.

A provider call either succeeds, fails transiently (network timeout, connection refused, a 5xx:
worth retrying with the same idempotency key) or fails permanently (the request is malformed or
refused: retrying cannot help, a person must look at it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from commerce.errors import CommerceError
from tracehub.errors import UnavailableError, UpstreamError


class ProviderTransientError(CommerceError, UnavailableError):
    """Timeout, connection failure or 5xx: retry with the same idempotency key."""


class ProviderPermanentError(CommerceError, UpstreamError):
    """Format/validation error or refusal: never retried; goes to manual review."""


@dataclass(frozen=True)
class ProviderPayment:
    """The provider's view of one payment."""

    ref: str
    status: str  # provider's own status word
    amount_minor: int
    currency: str


class PaymentProvider(Protocol):
    """A payment provider. Every call carries the payment's idempotency key."""

    name: str

    def create(
        self,
        *,
        amount_minor: int,
        currency: str,
        capture_later: bool,
        idempotency_key: str,
        metadata: dict[str, str],
        options: dict[str, str],
    ) -> ProviderPayment:
        """Start a payment; with ``capture_later`` funds are only authorized.

        ``options`` are provider-specific request parameters: on the allow-list of
        commerce/payments/options.py, then validated by the provider.
        """
        ...

    def capture(self, ref: str, *, idempotency_key: str) -> ProviderPayment:
        """Capture an authorized payment (release of held funds)."""
        ...

    def retrieve(self, ref: str) -> ProviderPayment:
        """The provider's current view (reconciliation)."""
        ...

    def our_state(self, status: str) -> str:
        """Our payment state for one of the provider's status words."""
        ...
