"""`python -m ingest migrate`: apply pending database migrations (run by `make up`)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from ingest.schema import ensure_partitions, migrate
from tracehub import db
from tracehub.config import Settings


def main() -> int:
    if sys.argv[1:] != ["migrate"]:
        print("usage: python -m ingest migrate", file=sys.stderr)
        return 2
    with db.connect(Settings.from_env().postgres_dsn) as conn:
        applied = migrate(conn)
        # The gateway's role cannot create tables: the owner attaches the coming months'
        # partitions of readings here (run at every `make up`; monthly by cron in production).
        created = ensure_partitions(conn, datetime.now(UTC), months_before=1, months_after=3)
    print(f"ingest: migrations {'applied: ' + ', '.join(applied) if applied else 'up to date'}")
    if created:
        print(f"ingest: readings partitions attached: {', '.join(created)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
