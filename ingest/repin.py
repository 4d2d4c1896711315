"""The re-pin pass: every object the database records as stored on IPFS, pinned on every node.

A Kubo node that was down, or restored from an old backup, lacks what was written meanwhile; the
pass copies it from a node that holds it (tracehub.ipfs_replicated). It covers what a proof or a
page reads back: reading and event batches once stored (the CID is recorded only after every
node pinned the object), inspection reports and trade documents. It runs as the schema's owner,
since it reads every area's tables (`python -m ingest repin`, docs/deployment.md).
"""

from __future__ import annotations

from tracehub.db import Connection
from tracehub.ipfs_replicated import RepinReport, ReplicatedStore

#: Every CID the hub has recorded, one statement (the tables are listed in the module docstring).
_RECORDED_CIDS = """
SELECT ipfs_cid FROM batches WHERE state IN ('stored', 'anchored')
UNION SELECT ipfs_cid FROM epcis_batches WHERE state IN ('stored', 'anchored')
UNION SELECT report_cid FROM inspections
UNION SELECT json_cid FROM trade_documents
UNION SELECT pdf_cid FROM trade_documents
"""


def recorded_cids(conn: Connection) -> list[str]:
    """The CIDs of every stored batch, inspection report and trade document."""
    return [row[0] for row in conn.execute(_RECORDED_CIDS).fetchall()]


def repin(conn: Connection, store: ReplicatedStore) -> RepinReport:
    """Pin every recorded object on every reachable node of `store`."""
    return store.repin(recorded_cids(conn))
