"""The ingest schema: ordered SQL migrations, and the monthly partitions of ``readings``.

Migrations are the files ``ingest/migrations/NNNN_name.sql``, applied in name order into the
first schema of the connection's ``search_path`` (so tests migrate into a schema of their own).
Each runs in its own transaction together with its row in ``schema_migrations``, under a
transaction-scoped advisory lock, so two gateways starting at once apply each migration exactly
once: the second waits, then finds it recorded. An applied migration's file must not change; its
SHA-256 is recorded and checked.

A migration may hold lines only for TimescaleDB or only for native partitioning::

    --#if timescaledb        (or: --#if native)
    ...
    --#else
    ...
    --#endif

The condition is :func:`tracehub.db.timescaledb_available` at the time the migration is applied.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from ingest.errors import IngestError
from ingest.roles import grant_component_roles
from tracehub import db
from tracehub.db import timescaledb_available
from tracehub.errors import ConflictError

__all__ = [
    "MIGRATIONS_DIR",
    "Migration",
    "MigrationError",
    "ensure_partitions",
    "load_migrations",
    "migrate",
    "month_start",
    "partition_name",
    "require_migrated",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_FILE = re.compile(r"(?P<version>[0-9]{4}_[a-z0-9_]+)\.sql")
_DIRECTIVE = re.compile(r"--#(?P<word>if|else|endif)\b\s*(?P<arg>\S*)\s*$")
_CONDITIONS = ("timescaledb", "native")
#: Prefixes of the advisory lock keys; the schema name is appended, so schemas do not contend.
_MIGRATE_LOCK = "tracehub.ingest.migrate:"
_PARTITION_LOCK = "tracehub.ingest.partitions:"

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    checksum   text        NOT NULL
)
"""


class MigrationError(IngestError, ConflictError):
    """The migrations cannot be applied as they are (bad file, edited migration, no schema)."""


@dataclass(frozen=True)
class Migration:
    version: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def sql(self, *, timescaledb: bool) -> str:
        """The statements to run, with the conditional lines resolved."""
        out: list[str] = []
        keep: bool | None = None  # None: outside any --#if
        for number, line in enumerate(self.text.splitlines(), 1):
            match = _DIRECTIVE.match(line.strip())
            if match is None:
                if keep is not False:
                    out.append(line)
                continue
            word, arg = match["word"], match["arg"]
            where = f"{self.version}.sql line {number}"
            if word == "if":
                if keep is not None or arg not in _CONDITIONS:
                    raise MigrationError(f"{where}: nested or unknown --#if {arg!r}")
                keep = (arg == "timescaledb") == timescaledb
            elif keep is None or arg:
                raise MigrationError(f"{where}: --#{word} without --#if")
            elif word == "else":
                keep = not keep
            else:
                keep = None
        if keep is not None:
            raise MigrationError(f"{self.version}.sql: --#if without --#endif")
        return "\n".join(out) + "\n"


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migrations in version order; every ``.sql`` file must be named ``NNNN_name.sql``."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migrations are named NNNN_lowercase_name.sql")
        migration = Migration(match["version"], path.read_text(encoding="utf-8"))
        migration.sql(timescaledb=False)  # syntax check of the directives, before anything runs
        migrations.append(migration)
    numbers = [m.version[:4] for m in migrations]
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"two migrations share a number: {numbers}")
    return migrations


def _current_schema(conn: db.Connection) -> str:
    row = conn.execute("SELECT current_schema()").fetchone()
    if row is None or row[0] is None:
        raise MigrationError("no schema of the search_path exists: nothing to migrate into")
    return str(row[0])


def _lock(conn: db.Connection, prefix: str, schema: str) -> None:
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (prefix + schema,), prepare=False
    )


def migrate(conn: db.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations in order, each in its own transaction; idempotent.

    ``conn`` must not be inside a transaction (each migration commits on its own). Returns the
    versions applied by this call (empty when the schema was up to date).
    """
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise MigrationError("migrate() needs a connection that is not inside a transaction")
    with conn.transaction():
        key = _MIGRATE_LOCK + _current_schema(conn)
        # A session lock for the whole run: a second migrator waits and then finds nothing to
        # do, rather than interleaving with the first one migration by migration.
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,), prepare=False)
    try:
        applied = _apply_pending(conn, directory)
        with conn.transaction():
            grant_component_roles(conn)
        return applied
    finally:
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,), prepare=False
            )


def require_migrated(conn: db.Connection, directory: Path = MIGRATIONS_DIR) -> None:
    """Raise `MigrationError` unless every migration is applied to the current schema.

    What a process that may not migrate (a component's own role) checks at start, so it fails
    at once with the fix rather than on the first missing column.
    """
    schema = _current_schema(conn)
    wanted = {m.version: m.checksum for m in load_migrations(directory)}
    try:
        with conn.transaction():
            applied: dict[str, str] = {
                str(version): str(checksum)
                for version, checksum in conn.execute(
                    "SELECT version, checksum FROM schema_migrations", prepare=False
                )
            }
    except psycopg.errors.UndefinedTable:
        applied = {}
    missing = sorted(v for v in wanted if v not in applied)
    if missing:
        raise MigrationError(
            f"schema {schema!r} lacks migrations {', '.join(missing)}: run "
            "`python -m ingest migrate` as the schema's owner"
        )


def _apply_pending(conn: db.Connection, directory: Path) -> list[str]:
    applied: list[str] = []
    timescaledb: bool | None = None
    for migration in load_migrations(directory):
        with conn.transaction():
            schema = _current_schema(conn)
            conn.execute(_BOOTSTRAP, prepare=False)
            row = conn.execute(
                "SELECT checksum FROM schema_migrations WHERE version = %s",
                (migration.version,),
                prepare=False,
            ).fetchone()
            if row is not None:
                if row[0] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version} was applied to schema {schema!r} from "
                        "a different file; applied migrations must never be edited"
                    )
                continue
            if timescaledb is None:
                timescaledb = timescaledb_available(conn)
            conn.execute(migration.sql(timescaledb=timescaledb).encode("utf-8"), prepare=False)
            conn.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                (migration.version, migration.checksum),
                prepare=False,
            )
        applied.append(migration.version)
    return applied


# ---------------------------------------------------------------------- partitions


def month_start(ts: datetime) -> datetime:
    """The first instant (UTC) of the month ``ts`` falls in."""
    if ts.utcoffset() is None:
        raise ValueError("expected a timezone-aware datetime")
    ts = ts.astimezone(UTC)
    return datetime(ts.year, ts.month, 1, tzinfo=UTC)


def _add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    """``readings_y2026m06`` for June 2026."""
    return f"readings_y{month.year:04d}m{month.month:02d}"


def ensure_partitions(
    conn: db.Connection,
    around: datetime,
    *,
    months_before: int = 1,
    months_after: int = 1,
    lock_timeout_ms: int = 5000,
) -> list[str]:
    """Make sure ``readings`` has the monthly partitions around ``around``; returns those created.

    Covers the month of ``around`` and ``months_before`` / ``months_after`` months either side.
    A no-op when ``readings`` is not natively partitioned (a TimescaleDB hypertable makes its
    own chunks). Runs in its own transaction: ``conn`` must not be inside one.

    A partition is created as a plain table, filled with any rows of its month that had landed
    in ``readings_default`` meanwhile, then attached: ATTACH PARTITION takes only a SHARE UPDATE
    EXCLUSIVE lock on ``readings`` (inserts and queries go on), where CREATE TABLE ... PARTITION
    OF would take an ACCESS EXCLUSIVE one. It does lock ``readings_default`` exclusively for a
    moment; ``lock_timeout_ms`` bounds the wait (``psycopg.errors.LockNotAvailable``).
    """
    if months_before < 0 or months_after < 0:
        raise ValueError("months_before and months_after must not be negative")
    first = month_start(around)
    months = [_add_months(first, n) for n in range(-months_before, months_after + 1)]
    created: list[str] = []
    with conn.transaction():
        row = conn.execute(
            "SELECT c.relkind::text, n.nspname::text FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = to_regclass('readings')",
            prepare=False,
        ).fetchone()
        if row is None:
            raise MigrationError("no readings table on the search_path: run migrate() first")
        kind, schema = row
        if kind != "p":
            return []
        conn.execute(
            sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{lock_timeout_ms}ms")),
            prepare=False,
        )
        _lock(conn, _PARTITION_LOCK, schema)
        existing = {
            name
            for (name,) in conn.execute(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass('readings')",
                prepare=False,
            )
        }
        for month in months:
            name = partition_name(month)
            if name in existing:
                continue
            _attach_month(conn, schema, name, month, _add_months(month, 1))
            created.append(name)
    return created


def _attach_month(
    conn: db.Connection, schema: str, name: str, low: datetime, high: datetime
) -> None:
    parent = sql.Identifier(schema, "readings")
    default = sql.Identifier(schema, "readings_default")
    table = sql.Identifier(schema, name)
    bounds = {"low": sql.Literal(low.isoformat()), "high": sql.Literal(high.isoformat())}
    statements = [
        # The same columns, defaults, NOT NULL and CHECK constraints; ATTACH adds the indexes,
        # primary key and foreign key of the parent. The CHECK spares ATTACH its validating scan.
        sql.SQL(
            "CREATE TABLE {table} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS,"
            " CONSTRAINT {check} CHECK (ts >= {low}::timestamptz AND ts < {high}::timestamptz))"
        ),
        # Rows of this month that arrived before the partition existed sit in the default
        # partition; ATTACH would refuse while they are there.
        sql.SQL(
            "WITH moved AS (DELETE FROM {default}"
            " WHERE ts >= {low}::timestamptz AND ts < {high}::timestamptz RETURNING *)"
            " INSERT INTO {table} SELECT * FROM moved"
        ),
        sql.SQL(
            "ALTER TABLE {parent} ATTACH PARTITION {table}"
            " FOR VALUES FROM ({low}::timestamptz) TO ({high}::timestamptz)"
        ),
        sql.SQL("ALTER TABLE {table} DROP CONSTRAINT {check}"),
    ]
    for statement in statements:
        conn.execute(
            statement.format(
                table=table,
                parent=parent,
                default=default,
                check=sql.Identifier(f"{name}_bounds"),
                **bounds,
            ),
            prepare=False,
        )
