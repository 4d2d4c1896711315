"""Reconciliation: payments whose state here disagrees with the provider's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commerce.payments.provider import (
    PaymentProvider,
    ProviderPermanentError,
    ProviderTransientError,
)

#: Our states that the provider knows about (manual states and pending ones it has not seen).
_COMPARED = ("submitted", "authorized", "succeeded", "cancelled")
#: Our states that follow from a provider state by our own decision (held funds stay
#: authorized at the provider; released ones were captured).
_EQUIVALENT = {"held": "authorized", "released": "succeeded"}


@dataclass(frozen=True)
class Mismatch:
    payment_id: str
    provider_ref: str
    ours: str
    provider_status: str
    provider_state: str


def reconcile(conn: Any, provider: PaymentProvider) -> tuple[int, list[Mismatch]]:
    """Compare every provider-backed payment; returns (checked, mismatches)."""
    rows = conn.execute(
        "SELECT payment_id::text, provider_ref, state FROM payments"
        " WHERE provider = %s AND provider_ref IS NOT NULL AND state = ANY(%s)"
        " ORDER BY created_at",
        (provider.name, [*_COMPARED, *_EQUIVALENT]),
    ).fetchall()
    mismatches = []
    for payment_id, ref, ours in rows:
        try:
            view = provider.retrieve(ref)
            theirs = provider.our_state(view.status)
        except (ProviderTransientError, ProviderPermanentError) as exc:
            mismatches.append(Mismatch(payment_id, ref, ours, f"unreachable: {exc}", "unknown"))
            continue
        if _EQUIVALENT.get(ours, ours) != theirs:
            mismatches.append(Mismatch(payment_id, ref, ours, view.status, theirs))
    return len(rows), mismatches
