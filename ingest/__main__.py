"""`python -m ingest migrate`: apply pending database migrations (run by `make up`)."""

from __future__ import annotations

import sys

from ingest.schema import migrate
from tracehub import db
from tracehub.config import Settings


def main() -> int:
    if sys.argv[1:] != ["migrate"]:
        print("usage: python -m ingest migrate", file=sys.stderr)
        return 2
    with db.connect(Settings.from_env().postgres_dsn) as conn:
        applied = migrate(conn)
    print(f"ingest: migrations {'applied: ' + ', '.join(applied) if applied else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
