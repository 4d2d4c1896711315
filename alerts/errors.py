"""The alerts area's errors: one root, :class:`AlertsError`; each concrete error also takes the
kind of failure it is (tracehub/errors.py), which the API turns into its status.

The rules' own :class:`~alerts.rules.RuleError`, the deliverer's
:class:`~alerts.delivery.DeliveryError` and :class:`~alerts.webhook.WebhookSignatureError` live
next to the code that raises them; these are the store's.
"""

from __future__ import annotations

from tracehub.errors import ConflictError, NotFoundError, TraceHubError, UnprocessableError

__all__ = [
    "AlertNotFoundError",
    "AlertStateError",
    "AlertsError",
    "RuleExistsError",
    "RuleNotFoundError",
    "SubscriptionChannelError",
    "SubscriptionError",
    "SubscriptionNotFoundError",
]


class AlertsError(TraceHubError):
    """Root of every error the alerts area raises on purpose."""


class AlertNotFoundError(AlertsError, NotFoundError):
    """No alert has this id."""


class AlertStateError(AlertsError, ConflictError):
    """The alert's state does not allow this change (the message says why)."""


class RuleNotFoundError(AlertsError, NotFoundError):
    """No alert rule has this id."""


class RuleExistsError(AlertsError, ConflictError):
    """An alert rule with this id exists already."""


class SubscriptionError(AlertsError, UnprocessableError):
    """A subscription's target is not one its channel can deliver to, or names no shipment."""


class SubscriptionNotFoundError(AlertsError, NotFoundError):
    """No subscription has this id."""


class SubscriptionChannelError(AlertsError, ConflictError):
    """A subscription's channel cannot change."""
