"""Database roles: what each TraceHub process may do in a schema (least privilege).

The schema's owner, ``tracehub``, runs the migrations and is the only role that can change the
schema. Each long-running process connects as a role of its own (``Settings.postgres_dsn_for``)
that may only read and write rows, and only where its job lies:

- ``tracehub_gateway`` writes readings, batches and the ingest bookkeeping, EPCIS anchoring and
  alerts; it has no right at all on commerce's tables (orders, payments, quotes, …) or on user
  accounts.
- ``tracehub_api`` and ``tracehub_worker`` (commerce's worker) read readings but cannot write
  them: only the gateway stores what a device signed.

Grants are re-applied at the end of every migration run, so a table a migration adds gets its
rights at once. A role missing from the cluster (a database set up by hand) is created without
login; the stack's set-up gives the roles their passwords (network/postgres/postgres.sh).
"""

from __future__ import annotations

from psycopg import sql

from tracehub import db
from tracehub.config import DATABASE_ROLES

__all__ = ["ACCOUNT_TABLES", "COMMERCE_TABLES", "READING_TABLES", "grant_component_roles"]

#: What a device signed and the gateway's bookkeeping of it: only the gateway writes these.
READING_TABLES = frozenset(
    {
        "readings",
        "reading_keys",
        "batches",
        "open_batches",
        "anchor_outbox",
        "quarantine",
        "lost_readings",
        "missing_readings",
        "chain_gaps",
        "dropped_reports",
    }
)
#: Commerce's tables: the gateway has no right on them.
COMMERCE_TABLES = frozenset(
    {
        "orders",
        "order_lines",
        "order_shipments",
        "order_alerts",
        "payments",
        "payment_attempts",
        "payment_decisions",
        "quotes",
        "quote_lines",
        "rfqs",
        "price_lists",
        "fx_rates",
        "webhook_events",
        "trade_documents",
        "clearance_steps",
        "tariff_rates",
        "recall_orders",
    }
)
#: Sign-in data: the gateway has no right on it either.
ACCOUNT_TABLES = frozenset({"users", "login_throttle"})

_ROW_RIGHTS = ("SELECT", "INSERT", "UPDATE", "DELETE")


def _is_reading_table(name: str) -> bool:
    return name in READING_TABLES or name.startswith("readings_")  # its partitions


def rights_of(component: str, table: str) -> tuple[str, ...]:
    """The privileges ``component``'s role holds on ``table`` (of the TraceHub schema)."""
    if component == "gateway":
        if table in COMMERCE_TABLES or table in ACCOUNT_TABLES:
            return ()
        return _ROW_RIGHTS
    if component in ("api", "worker"):
        return ("SELECT",) if _is_reading_table(table) else _ROW_RIGHTS
    raise ValueError(f"unknown component {component!r}")


def grant_component_roles(conn: db.Connection) -> None:
    """Give each component role exactly its rights in the connection's current schema.

    Run by the schema's owner, inside a transaction. Rights are revoked first, so what this
    module no longer grants is taken back.
    """
    schema = conn.execute("SELECT current_schema()").fetchone()
    assert schema is not None and schema[0] is not None
    schema_id = sql.Identifier(str(schema[0]))
    for role in DATABASE_ROLES.values():
        conn.execute(
            sql.SQL(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {name}) THEN"
                " CREATE ROLE {role}; END IF; END $$"
            ).format(name=sql.Literal(role), role=sql.Identifier(role)),
            prepare=False,
        )
    tables = [
        str(name)
        for (name,) in conn.execute(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm')"
            " ORDER BY 1",
            prepare=False,
        )
    ]
    for component, role in DATABASE_ROLES.items():
        role_id = sql.Identifier(role)
        conn.execute(
            sql.SQL(
                "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role};"
                " REVOKE CREATE ON SCHEMA {schema} FROM {role};"
                " REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {role};"
                " GRANT USAGE ON SCHEMA {schema} TO {role}"
            ).format(schema=schema_id, role=role_id),
            prepare=False,
        )
        by_rights: dict[tuple[str, ...], list[str]] = {}
        for table in tables:
            rights = rights_of(component, table)
            if rights:
                by_rights.setdefault(rights, []).append(table)
        # The serial columns' sequences of the tables it may insert into, and no others.
        writable = [t for t in tables if "INSERT" in rights_of(component, t)]
        for (sequence,) in conn.execute(
            "SELECT s.relname::text FROM pg_class s"
            " JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i')"
            " JOIN pg_class t ON t.oid = d.refobjid"
            " JOIN pg_namespace n ON n.oid = s.relnamespace"
            " WHERE s.relkind = 'S' AND n.nspname = current_schema() AND t.relname = ANY(%s)",
            (writable,),
            prepare=False,
        ).fetchall():
            conn.execute(
                sql.SQL("GRANT USAGE, SELECT ON SEQUENCE {seq} TO {role}").format(
                    seq=sql.Identifier(str(schema[0]), str(sequence)), role=role_id
                ),
                prepare=False,
            )
        for rights, names in by_rights.items():
            conn.execute(
                sql.SQL("GRANT {rights} ON {tables} TO {role}").format(
                    rights=sql.SQL(", ").join(sql.SQL(r) for r in rights),
                    tables=sql.SQL(", ").join(sql.Identifier(str(schema[0]), n) for n in names),
                    role=role_id,
                ),
                prepare=False,
            )
