"""PostgreSQL connection helpers shared by the parts that store data.

`Connection` and `AsyncConnection` are the connection types every part annotates with: psycopg 3
connections whose rows are tuples (psycopg's default row factory), named once here.
"""

from __future__ import annotations

from typing import TypeAlias

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

#: A synchronous connection returning tuple rows (what `connect` opens).
Connection: TypeAlias = psycopg.Connection[TupleRow]
#: An asyncio connection returning tuple rows (the API's pooled connections).
AsyncConnection: TypeAlias = psycopg.AsyncConnection[TupleRow]


def connect(dsn: str, **kwargs: object) -> Connection:
    """A psycopg 3 connection to the TraceHub database."""
    return psycopg.connect(dsn, **kwargs)  # type: ignore[arg-type]


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` working in ``schema`` (a test's or a demo's own) instead of its default one."""
    return make_conninfo(dsn, options=f"-c search_path={schema}")


def timescaledb_available(conn: Connection) -> bool:
    """Whether the server can load TimescaleDB (Debian ships no package for it)."""
    row = conn.execute(
        "select 1 from pg_available_extensions where name = 'timescaledb'"
    ).fetchone()
    return row is not None
