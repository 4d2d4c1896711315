"""Stripe through its official Python SDK (PaymentIntents), e.g. against stripe-mock.

The SDK's own retries are switched off (``max_network_retries=0``): commerce/payments/retry.py
is the single retry policy, and each call passes the payment's idempotency key to Stripe.
"""

from __future__ import annotations

from typing import Any

import stripe

from commerce.payments.provider import (
    ProviderPayment,
    ProviderPermanentError,
    ProviderTransientError,
)

#: Stripe PaymentIntent status -> our payment state.
_STATES = {
    "requires_payment_method": "submitted",
    "requires_confirmation": "submitted",
    "requires_action": "submitted",
    "processing": "submitted",
    "requires_capture": "authorized",
    "succeeded": "succeeded",
    "canceled": "cancelled",
}


class StripeProvider:
    """PaymentIntents via ``stripe.StripeClient``."""

    name = "stripe"

    def __init__(self, api_key: str, api_base: str, timeout_s: float = 10.0) -> None:
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout_s),
        )

    @staticmethod
    def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except stripe.APIConnectionError as exc:  # timeouts, refused connections
            raise ProviderTransientError(f"stripe: connection: {exc.user_message or exc}") from exc
        except stripe.StripeError as exc:
            status = exc.http_status or 0
            if status >= 500 or status == 429:
                raise ProviderTransientError(
                    f"stripe: HTTP {status}: {exc.user_message or exc}"
                ) from exc
            raise ProviderPermanentError(
                f"stripe: HTTP {status}: {exc.user_message or exc}"
            ) from exc

    @staticmethod
    def _view(intent: Any) -> ProviderPayment:
        return ProviderPayment(
            ref=str(intent.id),
            status=str(intent.status),
            amount_minor=int(intent.amount),
            currency=str(intent.currency).upper(),
        )

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
        params: dict[str, Any] = {
            **options,
            "amount": amount_minor,
            "currency": currency.lower(),
            "capture_method": "manual" if capture_later else "automatic",
            "metadata": metadata,
        }
        intent = self._call(
            self._client.v1.payment_intents.create,
            params=params,
            options={"idempotency_key": idempotency_key},
        )
        return self._view(intent)

    def capture(self, ref: str, *, idempotency_key: str) -> ProviderPayment:
        intent = self._call(
            self._client.v1.payment_intents.capture,
            ref,
            options={"idempotency_key": idempotency_key},
        )
        return self._view(intent)

    def retrieve(self, ref: str) -> ProviderPayment:
        return self._view(self._call(self._client.v1.payment_intents.retrieve, ref))

    def our_state(self, status: str) -> str:
        return _STATES.get(status, "submitted")
