"""The API's PostgreSQL pool (psycopg 3, async) and the dependency that lends a connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from api.config import ApiConfig


def make_pool(config: ApiConfig) -> AsyncConnectionPool:
    kwargs: dict[str, object] = {}
    if config.connect_options:
        kwargs["options"] = config.connect_options
    return AsyncConnectionPool(
        config.postgres_dsn,
        min_size=config.pool_min,
        max_size=config.pool_max,
        kwargs=kwargs,
        open=False,
    )


def pool_of(request: Request) -> AsyncConnectionPool:
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


async def _connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """One pooled connection for the request; committed when the handler returns normally."""
    async with pool_of(request).connection() as conn:
        yield conn


Connection = Annotated[AsyncConnection, Depends(_connection)]
