"""The stack's PostgreSQL: reachable on loopback, our database exists, data survives a commit."""

from __future__ import annotations

import uuid
from pathlib import Path

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


def test_timescaledb_detection_matches_the_servers_extension_files(stack: Settings) -> None:
    """The expected answer comes from the server's files, not from the catalogue it queries:
    an extension is available exactly when its control file is in SHAREDIR/extension (the
    stack's server runs on this machine, so the directory can be read from here)."""
    with db.connect(stack.postgres_dsn) as conn:
        row = conn.execute("select setting from pg_config where name = 'SHAREDIR'").fetchone()
        detected = db.timescaledb_available(conn)
    assert row is not None  # pg_config always has SHAREDIR (it needs a superuser: ours is one)
    extensions = Path(row[0]) / "extension"
    assert (extensions / "plpgsql.control").is_file(), f"not the server's files: {extensions}"
    assert detected == (extensions / "timescaledb.control").is_file()


def test_listens_on_loopback_only(stack: Settings) -> None:
    with db.connect(stack.postgres_dsn) as conn:
        row = conn.execute("show listen_addresses").fetchone()
        assert row == ("127.0.0.1",)
