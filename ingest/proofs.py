"""The one proof builder: reading and EPCIS event proofs, rebuilt from the anchored batch.

The API, audit bundles and the CLI all build proofs here; the formats and their offline checks
are the kernel's (tracehub/proof.py, tracehub/epcis/proof.py).
"""

from __future__ import annotations

import psycopg

from ingest.epcis.store import FIND_EVENT
from ingest.store import ReadingStore
from tracehub.epcis.hashing import leaf_data
from tracehub.epcis.proof import EventProof
from tracehub.merkle import MerkleTree, leaf_hash
from tracehub.proof import Proof


class ProofUnavailable(LookupError):
    """The reading is unknown, not yet batched, or its batch not yet anchored."""


def proof_for(
    store: ReadingStore, device_id: str, seq: int, *, channel: str, chaincode: str
) -> Proof:
    """The inclusion proof of reading (device_id, seq) in its anchored batch."""
    reading = store.reading(device_id, seq)
    if reading is None or reading.batch_id is None or reading.batch_index is None:
        raise ProofUnavailable(f"reading {device_id} #{seq} is not in a batch yet")
    batch = store.batch(reading.batch_id)
    if batch is None or batch.tx_id is None or batch.block_number is None or not batch.ipfs_cid:
        raise ProofUnavailable(f"batch {reading.batch_id} is not anchored yet")
    tree = MerkleTree([bytes.fromhex(h) for h in store.batch_leaf_hashes(batch.batch_id)])
    return Proof.from_tree(
        tree,
        reading.batch_index,
        reading.reading_hash,
        batch_id=batch.batch_id,
        ipfs_cid=batch.ipfs_cid,
        tx_id=batch.tx_id,
        block_number=batch.block_number,
        channel=channel,
        chaincode=chaincode,
        device_certificate_sha256=reading.certificate_sha256,
    )


def event_proof(
    conn: psycopg.Connection,
    event_id: str,
    *,
    channel: str = "trace",
    chaincode: str = "tracehub",
) -> EventProof | None:
    """The proof of an event (by eventID, else hash URI), or None while it is unknown or its
    batch not yet anchored."""
    found = conn.execute(
        "SELECT event_id, event_hash, batch_id, batch_index FROM epcis_events" + FIND_EVENT,
        {"id": event_id},
    ).fetchone()
    if found is None or found[2] is None:
        return None
    event_id, uri, batch_id, index = found
    row = conn.execute(
        "SELECT ipfs_cid, tx_id, block_number FROM epcis_batches"
        " WHERE batch_id = %s AND state = 'anchored'",
        (batch_id,),
    ).fetchone()
    if row is None:
        return None
    cid, tx_id, block_number = row
    hashes = [
        r[0]
        for r in conn.execute(
            "SELECT hash_hex FROM epcis_events WHERE batch_id = %s ORDER BY batch_index",
            (batch_id,),
        ).fetchall()
    ]
    tree = MerkleTree([bytes.fromhex(h) for h in hashes])
    leaf = leaf_hash(leaf_data(uri))
    if tree.leaf(index) != leaf:
        raise RuntimeError(f"event {event_id} is not leaf {index} of batch {batch_id}")
    return EventProof.from_tree(
        tree,
        index,
        event_id=event_id,
        event_hash=uri,
        batch_id=batch_id,
        ipfs_cid=cid,
        tx_id=tx_id,
        block_number=block_number,
        channel=channel,
        chaincode=chaincode,
    )
