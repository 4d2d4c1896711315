"""Each user's current token version, checked on every authenticated request, cached briefly.

A token carries the version its user had when it was issued (claim `ver`). Disabling the user
or revoking their tokens bumps `users.token_version` (api/accounts.py), so older tokens stop
matching. Looking the version up on every request would cost a database round trip each, so
each API process keeps it for `CACHE_S` seconds: the process that bumps a version forgets its
entry at once, and every other process refuses the old tokens within `CACHE_S` (the documented
bound, docs/security.md). A disabled or deleted user is cached as None and refused.

The look-ups use a small pool of their own: a handler may already hold a connection of the
app's pool while its dependencies authenticate, and waiting on the same pool for a second one
deadlocks once every connection is held that way.
"""

from __future__ import annotations

import time
from typing import Protocol

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from api.config import ApiConfig
from api.db import AsyncPool
from tracehub import db

__all__ = ["CACHE_S", "TokenVersions", "of", "still_current"]

#: The longest a revoked token or a disabled user's token is still accepted by another process.
CACHE_S = 5.0


class TokenVersions:
    """user_id -> (current version or None, when it was read), bounded in size."""

    def __init__(
        self, config: ApiConfig, cache_s: float = CACHE_S, max_entries: int = 50_000
    ) -> None:
        self.cache_s = cache_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[int | None, float]] = {}
        kwargs: dict[str, object] = {}
        if config.connect_options:
            kwargs["options"] = config.connect_options
        self._pool: AsyncPool = AsyncConnectionPool(
            config.postgres_dsn,
            min_size=1,
            max_size=4,
            kwargs=kwargs,
            open=False,
            name="token-versions",
            connection_class=db.AsyncConnection,
        )

    async def open(self) -> None:
        await self._pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self._pool.close()

    async def current(self, user_id: str) -> int | None:
        """The user's token version, or None if the user is disabled or gone."""
        now = time.monotonic()
        cached = self._entries.get(user_id)
        if cached is not None and now - cached[1] < self.cache_s:
            return cached[0]
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT token_version FROM users WHERE user_id = %s AND NOT disabled", (user_id,)
            )
            row = await cur.fetchone()
        version = None if row is None else int(row[0])
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # rare; the next requests re-read what they need
        self._entries[user_id] = (version, now)
        return version

    def forget(self, user_id: str) -> None:
        """Drop a user's entry (after this process changed their version or state)."""
        self._entries.pop(user_id, None)


def of(app: FastAPI) -> TokenVersions:
    """The app's cache (made by the app factory, opened and closed with the app)."""
    versions: TokenVersions = app.state.token_versions
    return versions


class Versioned(Protocol):
    """What a token names: its user and the version it was issued with."""

    @property
    def user_id(self) -> str: ...

    @property
    def token_version(self) -> int: ...


async def still_current(app: FastAPI, who: Versioned) -> bool:
    """Whether a token checked earlier is still good (for long-lived answers such as streams)."""
    return await of(app).current(who.user_id) == who.token_version
