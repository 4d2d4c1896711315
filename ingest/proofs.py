"""Proof documents for stored readings, rebuilt from the batch they were anchored in."""

from __future__ import annotations

from ingest.store import ReadingStore
from tracehub.merkle import MerkleTree
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
