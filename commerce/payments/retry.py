"""The retry policy of provider calls: transient failures retried at most 3 times after
1 s, 2 s and 4 s; permanent failures never retried.

The sleep function is injectable so that tests can record the schedule; production sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from commerce.metrics import PAYMENT_RETRIES
from commerce.payments.provider import ProviderPermanentError, ProviderTransientError

T = TypeVar("T")

#: Back-off before retry 1, 2 and 3.
BACKOFF_S: tuple[float, ...] = (1.0, 2.0, 4.0)


@dataclass
class Attempt:
    """One call: its number, the back-off slept before it, and how it ended."""

    number: int
    delay_before_s: float
    outcome: str  # ok | transient | permanent
    error: str | None = None


@dataclass
class RetryOutcome(Generic[T]):
    """The result of the last attempt (or None), and every attempt made."""

    value: T | None
    attempts: list[Attempt] = field(default_factory=list)
    final: str = "ok"  # ok | failed | manual_review
    error: str | None = None


def call_with_retry(
    call: Callable[[], T],
    *,
    backoff: tuple[float, ...] = BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> RetryOutcome[T]:
    """Run ``call``; retry on ProviderTransientError after each back-off; stop on
    ProviderPermanentError."""
    outcome: RetryOutcome[T] = RetryOutcome(value=None)
    delays = (0.0, *backoff)
    for number, delay in enumerate(delays, start=1):
        if delay:
            sleep(delay)
        try:
            outcome.value = call()
        except ProviderPermanentError as exc:
            outcome.attempts.append(Attempt(number, delay, "permanent", str(exc)))
            outcome.final, outcome.error = "manual_review", str(exc)
            return outcome
        except ProviderTransientError as exc:
            outcome.attempts.append(Attempt(number, delay, "transient", str(exc)))
            outcome.error = str(exc)
            if number < len(delays):
                PAYMENT_RETRIES.inc()
            continue
        outcome.attempts.append(Attempt(number, delay, "ok"))
        outcome.final = "ok"
        return outcome
    outcome.final = "failed"
    outcome.error = f"gave up after {len(delays)} attempts; last error: {outcome.error}"
    return outcome
