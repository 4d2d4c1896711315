"""A migrated PostgreSQL schema of a test's own, so tests never see each other's rows."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from ingest.schema import MIGRATIONS_DIR, migrate
from tracehub import db

Connect = Callable[[], psycopg.Connection]


def new_schema(dsn: str) -> str:
    name = f"test_{secrets.token_hex(6)}"
    with db.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    return name


def drop_schema(dsn: str, name: str) -> None:
    assert name.startswith("test_")
    with db.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def connector(dsn: str, schema: str) -> Connect:
    return lambda: db.connect(dsn, options=f"-c search_path={schema}")


@contextmanager
def migrated_schema(dsn: str, directory: Path = MIGRATIONS_DIR) -> Iterator[str]:
    """A fresh schema with every migration (of ``directory``) applied; dropped afterwards."""
    schema = new_schema(dsn)
    try:
        with connector(dsn, schema)() as conn:
            migrate(conn, directory)
        yield schema
    finally:
        drop_schema(dsn, schema)
