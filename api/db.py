"""The API's PostgreSQL pools (psycopg 3): async for handlers, and a synchronous one, opened on
first use, for the modules that run in a worker thread (EPCIS, proofs, commerce's provider
paths) — a fresh connection per request costs more than the query it serves."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated

import psycopg
from fastapi import Depends, FastAPI, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, ConnectionPool

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


_sync_lock = threading.Lock()


def _sync_pool(app: FastAPI) -> ConnectionPool:
    with _sync_lock:
        pool: ConnectionPool | None = getattr(app.state, "sync_pool", None)
        if pool is None:
            config: ApiConfig = app.state.config
            kwargs: dict[str, object] = {}
            if config.connect_options:
                kwargs["options"] = config.connect_options
            pool = ConnectionPool(
                config.postgres_dsn,
                min_size=1,
                max_size=config.pool_max,
                kwargs=kwargs,
                open=True,
                name="sync",
            )
            app.state.sync_pool = pool
        return pool


@contextmanager
def sync_connection(request: Request) -> Iterator[psycopg.Connection]:
    """A pooled synchronous connection (for code run in a worker thread); committed on normal
    exit, rolled back on an exception."""
    with _sync_pool(request.app).connection() as conn:
        yield conn


def close_sync_pool(app: FastAPI) -> None:
    """Close the synchronous pool if it was opened (at app shutdown)."""
    with _sync_lock:
        pool: ConnectionPool | None = getattr(app.state, "sync_pool", None)
        app.state.sync_pool = None
    if pool is not None:
        pool.close()
