"""The SHA-256 hex checks of migration 0021 accept exactly what the regex they replaced accepted,
and validating them (0022) does not stop the store.

Against the stack's PostgreSQL, in migrated schemas of this module's own. Each check is taken
from the catalogue as the server stores it and evaluated by the server on candidate strings,
beside the old `~ '^[0-9a-f]{64}$'`: the two must agree on every one.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.schema import MIGRATIONS_DIR, load_migrations
from tests.support.db import connector, migrated_schema
from tracehub.config import Settings

pytestmark = pytest.mark.integration

OLD = "^[0-9a-f]{64}$"
# The constraints migration 0021 rewrote: (table, constraint, column).
REWRITTEN = {
    ("reading_keys", "reading_keys_reading_hash_check", "reading_hash"),
    ("devices", "devices_certificate_sha256_check", "certificate_sha256"),
    ("devices", "devices_last_hash_check", "last_hash"),
    ("batches", "batches_root_check", "root"),
    ("dropped_reports", "dropped_reports_report_hash_check", "report_hash"),
    ("dropped_reports", "dropped_reports_certificate_sha256_check", "certificate_sha256"),
    ("epcis_batches", "epcis_batches_root_check", "root"),
    ("epcis_events", "epcis_events_hash_hex_check", "hash_hex"),
}
HEX = "0123456789abcdef"
SAMPLES = [
    HEX * 4,
    (HEX * 4).upper(),
    HEX * 4 + "0",
    (HEX * 4)[:-1],
    (HEX * 4)[:-1] + "\n",
    HEX * 4 + "\n",
    (HEX * 4)[:-1] + "g",
    (HEX * 4)[:-1] + "\uff10",  # a full-width digit
    " " + (HEX * 4)[1:],
    "",
]


@pytest.fixture(scope="module")
def conn(stack: Settings) -> Iterator[psycopg.Connection]:
    dsn = stack.postgres_dsn
    with migrated_schema(dsn) as schema, connector(dsn, schema)() as c:
        c.autocommit = True
        yield c


@pytest.fixture(scope="module")
def checks(conn: psycopg.Connection) -> dict[tuple[str, str, str], str]:
    """Each rewritten check's expression as the server stores it, keyed like REWRITTEN."""
    rows = conn.execute(
        "SELECT c.conrelid::regclass::text, c.conname, pg_get_expr(c.conbin, c.conrelid)"
        " FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE n.nspname = current_schema() AND c.contype = 'c' AND c.conname = ANY(%s)",
        ([name for _, name, _ in REWRITTEN],),
    ).fetchall()
    found = {}
    for table, name, expr in rows:
        column = next(col for t, n, col in REWRITTEN if (t, n) == (table, name))
        found[(table, name, column)] = expr
    return found


def agree(conn: psycopg.Connection, expr: str, column: str, value: str) -> tuple[bool, bool]:
    """(the check, the old regex) on ``value``, both evaluated by the server."""
    query = f"SELECT ({expr}), {column} ~ %s FROM (SELECT %s::text AS {column}) AS candidate"
    row = conn.execute(query, (OLD, value), prepare=False).fetchone()
    assert row is not None
    return bool(row[0]), bool(row[1])


def test_every_rewritten_check_is_in_place_without_bounded_repetition(
    checks: dict[tuple[str, str, str], str],
) -> None:
    assert set(checks) == REWRITTEN
    for (_, name, column), expr in checks.items():
        assert f"length({column}) = 64" in expr, name
        assert "{64}" not in expr, name


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_the_checks_agree_with_the_old_regex_on_edge_cases(
    conn: psycopg.Connection, checks: dict[tuple[str, str, str], str], value: str
) -> None:
    expected = re.fullmatch("[0-9a-f]{64}", value) is not None
    for (_, name, column), expr in checks.items():
        assert agree(conn, expr, column, value) == (expected, expected), name


@settings(max_examples=150, deadline=None)
@given(
    value=st.text(alphabet=HEX + "ABCDEFg \n\x00é", min_size=60, max_size=68)
    | st.text(alphabet=HEX, min_size=62, max_size=66)
)
def test_the_checks_agree_with_the_old_regex_on_generated_strings(
    conn: psycopg.Connection, checks: dict[tuple[str, str, str], str], value: str
) -> None:
    value = value.replace("\x00", "0")  # PostgreSQL text cannot hold NUL
    for (_, name, column), expr in checks.items():
        new, old = agree(conn, expr, column, value)
        assert new == old, (name, value)


def test_a_reading_key_with_an_upper_case_hash_is_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation, match="reading_keys_reading_hash_check"):
        conn.execute(
            "INSERT INTO reading_keys (device_id, seq, ts, reading_hash)"
            " VALUES ('hash-check', 1, now(), %s)",
            ((HEX * 4).upper(),),
        )
    conn.execute(
        "INSERT INTO reading_keys (device_id, seq, ts, reading_hash)"
        " VALUES ('hash-check', 1, now(), %s)",
        (HEX * 4,),
    )


def test_validating_the_checks_lets_the_store_write_meanwhile(
    stack: Settings, tmp_path: Path
) -> None:
    """0022 runs while gateways store: its lock must not queue their inserts. Shown against an
    ADD CONSTRAINT that validates as it adds (what 0021 would be without NOT VALID), which does."""
    upto_0021 = tmp_path / "migrations"
    upto_0021.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name[:4] <= "0021":
            shutil.copy(path, upto_0021)
    validate = next(m for m in load_migrations() if m.version.startswith("0022"))
    dsn = stack.postgres_dsn
    with migrated_schema(dsn, upto_0021) as schema:
        connect = connector(dsn, schema)
        insert = (
            "INSERT INTO reading_keys (device_id, seq, ts, reading_hash)"
            " VALUES ('validate-meanwhile', %s, now(), %s)"
        )

        def write_while(statements: str, seq: int) -> None:
            with connect() as migrator, connect() as store:
                migrator.autocommit = store.autocommit = True
                store.execute("SET lock_timeout = '2s'")
                with migrator.transaction():  # held open while the store writes
                    migrator.execute(statements.encode(), prepare=False)
                    store.execute(insert, (seq, HEX * 4))

        write_while(validate.sql(timescaledb=False), 1)
        with pytest.raises(psycopg.errors.LockNotAvailable):
            write_while(
                "ALTER TABLE reading_keys ADD CONSTRAINT validated_as_added"
                " CHECK (length(reading_hash) = 64)",
                2,
            )
        with connect() as conn:
            stored = conn.execute(
                "SELECT seq FROM reading_keys WHERE device_id = 'validate-meanwhile'"
            ).fetchall()
            validated = conn.execute(
                "SELECT bool_and(convalidated) FROM pg_constraint"
                " WHERE connamespace = current_schema()::regnamespace AND conname = ANY(%s)",
                ([name for _, name, _ in REWRITTEN],),
            ).fetchone()
    assert stored == [(1,)]
    assert validated == (True,)
