"""The stack's PostgreSQL: reachable on loopback, our database exists, data survives a commit."""

from __future__ import annotations

import uuid

import pytest

from tracehub import db
from tracehub.config import Settings

pytestmark = pytest.mark.integration


def test_database_accepts_writes_and_reads(stack: Settings) -> None:
    table = f"smoke_{uuid.uuid4().hex[:8]}"
    with db.connect(stack.postgres_dsn) as conn:
        assert conn.info.dbname == "tracehub"
        assert conn.info.server_version >= 150000
        conn.execute(f"create table {table} (id int primary key, body text not null)")
        conn.execute(f"insert into {table} values (1, 'hello')")
        conn.commit()
    with db.connect(stack.postgres_dsn) as conn:
        try:
            assert conn.execute(f"select body from {table} where id = 1").fetchone() == ("hello",)
        finally:
            conn.execute(f"drop table {table}")


def test_timescaledb_detection_matches_the_catalogue(stack: Settings) -> None:
    with db.connect(stack.postgres_dsn) as conn:
        names = {row[0] for row in conn.execute("select name from pg_available_extensions")}
        assert "plpgsql" in names  # the catalogue query itself works
        assert db.timescaledb_available(conn) == ("timescaledb" in names)


def test_listens_on_loopback_only(stack: Settings) -> None:
    with db.connect(stack.postgres_dsn) as conn:
        row = conn.execute("show listen_addresses").fetchone()
        assert row == ("127.0.0.1",)
