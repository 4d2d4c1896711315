"""HMAC-SHA256 signatures of webhook deliveries (docs/alerts.md tells receivers how to check).

Header `TraceHub-Signature: t=<unix seconds>,v1=<hex>` where hex is
HMAC-SHA256(secret, f"{t}.".encode() + body). The timestamp is signed with the body, so a
receiver rejecting old timestamps (default tolerance 300 s) also rejects replays.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from alerts.errors import AlertsError
from tracehub.errors import InvalidError

SIGNATURE_HEADER = "TraceHub-Signature"
DEFAULT_TOLERANCE_S = 300


class WebhookSignatureError(AlertsError, InvalidError):
    """A webhook signature is missing, malformed, stale or wrong."""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for `body`."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check a received signature header; returns its timestamp or raises WebhookSignatureError."""
    if not header:
        raise WebhookSignatureError(f"no {SIGNATURE_HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise WebhookSignatureError(f"malformed {SIGNATURE_HEADER} element {item!r}")
        parts.setdefault(key, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        raise WebhookSignatureError("the signature has no numeric timestamp t=") from None
    current = time.time() if now is None else now
    if abs(current - t) > tolerance_s:
        raise WebhookSignatureError(f"timestamp {t} is more than {tolerance_s} s from now")
    expected = sign(secret, body, t).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
        raise WebhookSignatureError("no v1 signature matches the body")
    return t
