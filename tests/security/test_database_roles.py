"""Finding: PostgreSQL accepted any local connection without a password, and every component
used the same all-powerful role.

Now: password (SCRAM-SHA-256) authentication on every connection, passwords generated at set-up
into the run dir (network/postgres/postgres.sh); one role per component with only the rights
ingest/roles.py grants: the API and commerce's worker cannot write readings, the gateway cannot
touch commerce or accounts, and only the migrating owner can change the schema."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ingest.roles import ACCOUNT_TABLES, COMMERCE_TABLES, READING_TABLES
from tests.support.db import migrated_schema
from tracehub import db
from tracehub.config import API_HOST, API_PORT, DATABASE_ROLES, Settings


@pytest.fixture()
def schema(stack: Settings) -> Iterator[str]:
    with migrated_schema(stack.postgres_dsn) as name:
        yield name


def as_role(stack: Settings, component: str, schema: str) -> db.Connection:
    return db.connect(
        db.with_search_path(stack.postgres_dsn_for(component), schema), autocommit=True
    )


def refused(conn: db.Connection, statement: str) -> bool:
    try:
        conn.execute(statement)
    except errors.InsufficientPrivilege:
        return True
    return False


def test_a_connection_without_the_password_is_refused(stack: Settings) -> None:
    params = conninfo_to_dict(stack.postgres_dsn)
    params.pop("password", None)
    for user in ("tracehub", *DATABASE_ROLES.values()):
        no_password = make_conninfo("", **{**params, "user": user, "passfile": "/dev/null"})
        with pytest.raises(psycopg.OperationalError, match="password"):
            db.connect(no_password, connect_timeout=5).close()
        wrong = make_conninfo("", **{**params, "user": user, "password": "not-the-password"})
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            db.connect(wrong, connect_timeout=5).close()


def test_passwords_are_stored_as_scram_verifiers(stack: Settings) -> None:
    with db.connect(stack.postgres_dsn) as conn:
        rows = conn.execute(
            "SELECT rolname, left(rolpassword, 14) FROM pg_authid WHERE rolname = ANY(%s)",
            (["tracehub", *DATABASE_ROLES.values()],),
        ).fetchall()
    assert {name for name, _ in rows} == {"tracehub", *DATABASE_ROLES.values()}
    assert all(verifier == "SCRAM-SHA-256$" for _, verifier in rows), rows


def test_the_api_and_the_worker_read_readings_but_cannot_write_them(
    stack: Settings, schema: str
) -> None:
    with db.connect(db.with_search_path(stack.postgres_dsn, schema)) as owner:
        tables = [
            str(name)
            for (name,) in owner.execute(
                "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relkind IN ('r', 'p')"
                " AND relnamespace = %s::regnamespace",
                (sorted(READING_TABLES), schema),
            )
        ]
    assert "readings" in tables and "batches" in tables
    for component in ("api", "worker"):
        with as_role(stack, component, schema) as conn:
            conn.execute("SELECT count(*) FROM readings")  # reading is their job
            conn.execute("SELECT count(*) FROM orders")
            for table in tables:
                assert refused(conn, f"DELETE FROM {table}"), (component, table)
                assert refused(conn, f"INSERT INTO {table} DEFAULT VALUES"), (component, table)
            assert refused(conn, "UPDATE readings SET data = data")
            assert refused(conn, "UPDATE batches SET root = root")


def test_the_gateway_cannot_touch_commerce_or_accounts(stack: Settings, schema: str) -> None:
    with as_role(stack, "gateway", schema) as conn:
        conn.execute("SELECT count(*) FROM readings")
        conn.execute("SELECT count(*) FROM alerts")
        for table in sorted(COMMERCE_TABLES | ACCOUNT_TABLES):
            assert refused(conn, f"SELECT 1 FROM {table} LIMIT 1"), table
            assert refused(conn, f"DELETE FROM {table}"), table


def test_only_the_owner_changes_the_schema(stack: Settings, schema: str) -> None:
    for component in DATABASE_ROLES:
        with as_role(stack, component, schema) as conn:
            assert refused(conn, "CREATE TABLE sneaky (x int)"), component
            assert refused(conn, "ALTER TABLE readings ADD COLUMN sneaky int"), component
            assert refused(conn, "DROP TABLE alerts"), component
            assert refused(conn, "TRUNCATE alerts"), component
            assert refused(conn, "CREATE ROLE sneaky"), component
    with db.connect(stack.postgres_dsn) as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner)::text FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
            (schema,),
        ).fetchall()
        powers = conn.execute(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles"
            " WHERE rolname = ANY(%s)",
            (list(DATABASE_ROLES.values()),),
        ).fetchall()
    assert [owner for (owner,) in owners] == [conninfo_to_dict(stack.postgres_dsn)["user"]]
    assert len(powers) == len(DATABASE_ROLES)
    assert not any(superuser or roles or dbs for _, superuser, roles, dbs in powers), powers


def test_the_running_api_connects_as_its_own_role(stack: Settings) -> None:
    """The stack's API process (started by `make up`) is on the API's role, not the owner's."""
    httpx.get(f"http://{API_HOST}:{API_PORT}/healthz", timeout=10).raise_for_status()
    with db.connect(stack.postgres_dsn) as conn:
        users = {
            str(user)
            for (user,) in conn.execute(
                "SELECT DISTINCT usename FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name <> 'psql'"
                " AND usename IS NOT NULL"
            )
        }
    assert DATABASE_ROLES["api"] in users, users
