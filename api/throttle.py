"""Sign-in throttling per account name and per client address (docs/security.md).

Each attempt is counted *before* the password is checked, in PostgreSQL (table
`login_throttle`, committed at once on the sign-in's connection under a row lock), so every
API process shares the counts and parallel guesses cannot all slip in before the first failure
is written. A scope's row counts the attempts of its window; when
they reach the limit the row is locked, and attempts before `locked_until` are answered 429 with
`Retry-After`, without touching the password hash.

- per account: 5 attempts, then locked 1 min, and each further attempt after a lock doubles it
  (2, 4, 8 min, capped at 15 min); the count is forgotten after 15 quiet minutes, and at once
  on a successful sign-in;
- per client address: 20 attempts in a minute, then locked for a minute; a success
  gives its own attempt back (an office behind one address may sign in often), so only failures
  use the budget up.

Locking by account name lets anyone delay a known user's sign-in by guessing; the short, capped
lock is the usual trade against unlimited guessing. The address is the TCP peer's: behind a
reverse proxy every client shares the proxy's address, and headers like X-Forwarded-For are not
trusted, since any client can send them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from tracehub.db import AsyncConnection

__all__ = ["ACCOUNT", "ADDRESS", "Limit", "Throttled", "reserve", "succeeded"]


@dataclass(frozen=True)
class Throttled:
    """A refused attempt: the scope that is locked, and the seconds until it is not."""

    scope: str
    retry_after_s: int


@dataclass(frozen=True)
class Limit:
    """A scope's budget: `attempts` per `window_s`, then a lock of `lock_s` doubling per
    attempt after it, at most `lock_max_s`."""

    scope: str
    attempts: int
    window_s: float
    lock_s: float
    lock_max_s: float

    def lock_for(self, attempts: int) -> timedelta:
        doublings = min(attempts - self.attempts, 16)  # bounded exponent; the cap applies anyway
        return timedelta(seconds=min(self.lock_max_s, self.lock_s * 2**doublings))


ACCOUNT = Limit("account", attempts=5, window_s=900, lock_s=60, lock_max_s=900)
ADDRESS = Limit("address", attempts=20, window_s=60, lock_s=60, lock_max_s=60)

#: Rows older than this with no lock are deleted now and then (one sign-in in PURGE_ODDS).
_STALE = timedelta(days=1)
PURGE_ODDS = 100


def _key(text: str) -> str:
    return text[:200]


async def _reserve_one(conn: AsyncConnection, limit: Limit, key: str) -> Throttled | None:
    await conn.execute(
        "INSERT INTO login_throttle (scope, key) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (limit.scope, key),
    )
    cur = await conn.execute(
        "SELECT attempts, window_start, locked_until, now() FROM login_throttle"
        " WHERE scope = %s AND key = %s FOR UPDATE",
        (limit.scope, key),
    )
    row = await cur.fetchone()
    assert row is not None
    attempts: int = row[0]
    window_start: datetime = row[1]
    locked_until: datetime | None = row[2]
    now: datetime = row[3]
    if locked_until is not None and locked_until > now:
        return Throttled(limit.scope, math.ceil((locked_until - now).total_seconds()))
    quiet_since = max(window_start, locked_until or window_start)
    if now - quiet_since >= timedelta(seconds=limit.window_s):
        attempts, window_start = 0, now
    attempts += 1
    if attempts >= limit.attempts:
        locked_until = now + limit.lock_for(attempts)
    await conn.execute(
        "UPDATE login_throttle SET attempts = %s, window_start = %s, locked_until = %s"
        " WHERE scope = %s AND key = %s",
        (attempts, window_start, locked_until, limit.scope, key),
    )
    return None


async def reserve(conn: AsyncConnection, account: str, address: str) -> Throttled | None:
    """Count one sign-in attempt in both scopes; a `Throttled` if either is locked (nothing is
    counted for the account when the address is the one locked). Committed here, so the count
    stays whatever the sign-in does next."""
    refused = await _reserve_one(conn, ADDRESS, _key(address))
    await conn.commit()
    if refused is None:
        refused = await _reserve_one(conn, ACCOUNT, _key(account))
        await conn.commit()
    return refused


async def succeeded(conn: AsyncConnection, account: str, address: str) -> None:
    """A correct password: forget the account's attempts, give the address its attempt back."""
    await conn.execute(
        "DELETE FROM login_throttle WHERE scope = 'account' AND key = %s", (_key(account),)
    )
    await conn.execute(
        "UPDATE login_throttle SET attempts = greatest(attempts - 1, 0),"
        " locked_until = CASE WHEN attempts - 1 < %s THEN NULL ELSE locked_until END"
        " WHERE scope = 'address' AND key = %s",
        (ADDRESS.attempts, _key(address)),
    )
    if random.randrange(PURGE_ODDS) == 0:
        await conn.execute(
            "DELETE FROM login_throttle WHERE window_start < now() - %s"
            " AND (locked_until IS NULL OR locked_until < now())",
            (_STALE,),
        )
