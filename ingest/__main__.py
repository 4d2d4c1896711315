"""`python -m ingest migrate`: apply pending database migrations (run by `make up`).

`python -m ingest repin`: pin every object the database records on every Kubo node of
`TRACEHUB_IPFS_APIS` (ingest.repin); exit status 1 if a node is unreachable or an object is on
no node at all.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from ingest.repin import repin
from ingest.schema import ensure_partitions, migrate
from tracehub import db
from tracehub.config import Settings
from tracehub.ipfs_replicated import ReplicatedStore


def main() -> int:
    if sys.argv[1:] == ["repin"]:
        return repin_all(Settings.from_env())
    if sys.argv[1:] != ["migrate"]:
        print("usage: python -m ingest migrate|repin", file=sys.stderr)
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


def repin_all(settings: Settings) -> int:
    """The re-pin pass over the settings' Kubo nodes (a one-node list re-pins nothing)."""
    with (
        db.connect(settings.postgres_dsn) as conn,
        ReplicatedStore(settings.ipfs_endpoints) as store,
    ):
        report = repin(conn, store)
    copies = ", ".join(f"{url}: {n}" for url, n in report.repinned.items())
    print(f"ingest: repin: {report.checked} objects checked; copied to {copies or 'no node'}")
    for url in report.unreachable:
        print(f"ingest: repin: node {url} unreachable, not re-pinned", file=sys.stderr)
    for cid in report.unavailable:
        print(f"ingest: repin: {cid} is on no reachable node", file=sys.stderr)
    return 1 if report.unreachable or report.unavailable else 0


if __name__ == "__main__":
    sys.exit(main())
