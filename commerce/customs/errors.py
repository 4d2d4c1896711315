"""Customs errors (kinds from tracehub.errors, under commerce's root)."""

from __future__ import annotations

from commerce.errors import (
    CommerceConflictError,
    CommerceForbiddenError,
    CommerceInvalidError,
    CommerceNotFoundError,
)

__all__ = [
    "CustomsConflictError",
    "CustomsForbiddenError",
    "CustomsInvalidError",
    "CustomsNotFoundError",
]


class CustomsInvalidError(CommerceInvalidError):
    """A tariff row, a classification or a clearance step is malformed or unusable."""


class CustomsNotFoundError(CommerceNotFoundError):
    """No rate for a product's HS code at the destination, or no such shipment."""


class CustomsForbiddenError(CommerceForbiddenError):
    """The caller's organisation may not do this to the shipment."""


class CustomsConflictError(CommerceConflictError):
    """The step clashes with the shipment's clearance so far."""
