"""The provider parameters a buyer may pass with a card payment: an allow-list.

A payment's request to the provider is the hub's: who receives the funds (`on_behalf_of`,
`transfer_data`, `transfer_group`, `application_fee_amount`), the customer, the amount,
currency, capture method and metadata are set by commerce, never by the buyer. The buyer may
only describe their own payment. Any other key is refused (422) before a payment is created,
so nothing unknown reaches the provider.
"""

from __future__ import annotations

from collections.abc import Mapping

from commerce.errors import CommerceInvalidError

__all__ = ["BUYER_OPTIONS", "check_provider_options"]

#: Stripe PaymentIntent parameters (string-valued) that concern only the buyer's own payment.
BUYER_OPTIONS = frozenset(
    {
        "description",
        "payment_method",
        "receipt_email",
        "setup_future_usage",
        "statement_descriptor",
        "statement_descriptor_suffix",
    }
)


def check_provider_options(options: Mapping[str, str]) -> dict[str, str]:
    """The options, if every key is on the allow-list; `CommerceInvalidError` naming the rest."""
    unknown = sorted(set(options) - BUYER_OPTIONS)
    if unknown:
        raise CommerceInvalidError(
            f"provider_options may only hold {sorted(BUYER_OPTIONS)}; refused: {unknown}"
        )
    return dict(options)
