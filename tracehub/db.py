"""PostgreSQL connection helpers shared by the parts that store data."""

from __future__ import annotations

import psycopg


def connect(dsn: str, **kwargs: object) -> psycopg.Connection:
    """A psycopg 3 connection to the TraceHub database."""
    return psycopg.connect(dsn, **kwargs)  # type: ignore[arg-type]


def timescaledb_available(conn: psycopg.Connection) -> bool:
    """Whether the server can load TimescaleDB (Debian ships no package for it)."""
    row = conn.execute(
        "select 1 from pg_available_extensions where name = 'timescaledb'"
    ).fetchone()
    return row is not None
