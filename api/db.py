"""The API's PostgreSQL pools (psycopg 3): async for handlers, and a synchronous one, opened on
first use, for the modules that run in a worker thread (EPCIS, proofs, commerce's provider
paths) — a fresh connection per request costs more than the query it serves.

Connections are tracehub.db's `AsyncConnection` and `Connection` (tuple rows); `Connection` here
is the handlers' dependency: ``conn: Connection`` receives the request's pooled AsyncConnection."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated, TypeAlias

from fastapi import Depends, FastAPI, Request, WebSocket
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from api.config import ApiConfig
from tracehub import db

AsyncPool: TypeAlias = AsyncConnectionPool[db.AsyncConnection]
SyncPool: TypeAlias = ConnectionPool[db.Connection]


def make_pool(config: ApiConfig) -> AsyncPool:
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


def make_read_pool(config: ApiConfig) -> AsyncPool | None:
    """A pool for read-only pages on a hot standby (decision 0033); None without standbys, when
    those pages read through the main pool."""
    if config.postgres_read_dsn == config.postgres_dsn:
        return None
    kwargs: dict[str, object] = {}
    if config.connect_options:
        kwargs["options"] = config.connect_options
    return AsyncConnectionPool(
        config.postgres_read_dsn, min_size=1, max_size=config.pool_max, kwargs=kwargs, open=False
    )


def pool_of(request: Request) -> AsyncPool:
    pool: AsyncPool = request.app.state.pool
    return pool


def read_pool_of(request: Request) -> AsyncPool:
    """The pool of read-only work: the standby's if there is one. The primary waits for the
    standby to apply each commit, so what was written before is there to be read."""
    pool: AsyncPool | None = getattr(request.app.state, "read_pool", None)
    return pool if pool is not None else pool_of(request)


async def _connection(request: Request) -> AsyncIterator[db.AsyncConnection]:
    """One pooled connection for the request; committed when the handler returns normally."""
    async with pool_of(request).connection() as conn:
        yield conn


Connection = Annotated[db.AsyncConnection, Depends(_connection)]


_sync_lock = threading.Lock()


def _sync_pool(app: FastAPI) -> SyncPool:
    with _sync_lock:
        pool: SyncPool | None = getattr(app.state, "sync_pool", None)
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
def sync_connection(request: Request | WebSocket) -> Iterator[db.Connection]:
    """A pooled synchronous connection (for code run in a worker thread); committed on normal
    exit, rolled back on an exception."""
    with _sync_pool(request.app).connection() as conn:
        yield conn


def close_sync_pool(app: FastAPI) -> None:
    """Close the synchronous pool if it was opened (at app shutdown)."""
    with _sync_lock:
        pool: SyncPool | None = getattr(app.state, "sync_pool", None)
        app.state.sync_pool = None
    if pool is not None:
        pool.close()
