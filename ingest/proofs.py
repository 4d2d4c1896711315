"""The one proof builder: reading and EPCIS event proofs, from an anchored batch's stored facts
and its Merkle tree.

:class:`Anchored` holds what a proof states of its batch besides the tree (batch id, CID,
transaction, block, and the channel and chaincode it is anchored on); its
:meth:`~Anchored.reading_proof` and :meth:`~Anchored.event_proof` turn a tree and a leaf index
into a :class:`~tracehub.proof.Proof` / :class:`~tracehub.epcis.proof.EventProof`. Every proof
the hub hands out is built there: the API's (:func:`anchored_reading_proof`, with its
:class:`TreeCache`, and :func:`anchored_event_proof`), audit bundles (ingest/bundle.py), the
auditor's re-verification and the gateway's (:func:`proof_for`, :func:`event_proof`). The
formats and their offline checks are the kernel's (tracehub/proof.py, tracehub/epcis/proof.py).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ingest.epcis.store import FIND_EVENT
from ingest.errors import IngestError
from ingest.store import BATCH_LEAVES, ReadingStore
from tracehub.db import AsyncConnection, Connection
from tracehub.epcis.hashing import leaf_data
from tracehub.epcis.proof import EventProof
from tracehub.errors import ConflictError, InvalidError, NotFoundError
from tracehub.ledger import LedgerError
from tracehub.merkle import MerkleTree, leaf_data_from_reading_hash, leaf_hash
from tracehub.proof import BATCH_ID_PATTERN, Proof

__all__ = [
    "MAX_PROOF_RANGE",
    "AnchorNotFoundError",
    "Anchored",
    "ProofMismatchError",
    "ProofRangeError",
    "ProofUnavailableError",
    "TreeCache",
    "anchored_event_proof",
    "anchored_reading_proof",
    "anchored_reading_proofs",
    "block_number",
    "event_proof",
    "ledger_anchor",
    "proof_for",
    "tree_of",
]


class ProofUnavailableError(IngestError, NotFoundError):
    """The record is unknown, not yet batched, or its batch not yet anchored."""


class ProofRangeError(IngestError, InvalidError):
    """A range of proofs asked for is empty or longer than `MAX_PROOF_RANGE`."""


class ProofMismatchError(IngestError, ConflictError):
    """The stored batch does not hold the record at its recorded leaf (the stored data changed
    since the batch was sealed)."""


class AnchorNotFoundError(IngestError, NotFoundError):
    """The ledger holds no anchor of this batch (or the id is not a batch id)."""


class _Ledger(Protocol):
    def evaluate(self, name: str, *args: str) -> bytes: ...


def tree_of(leaf_hashes: Iterable[str]) -> MerkleTree:
    """A batch's Merkle tree from its leaves' record hashes (hex), in leaf order."""
    return MerkleTree([bytes.fromhex(h) for h in leaf_hashes])


@dataclass(frozen=True)
class Anchored:
    """An anchored batch as its proofs state it (the fields are the proofs' keyword
    arguments of the same names)."""

    batch_id: str
    ipfs_cid: str
    tx_id: str
    block_number: int
    channel: str
    chaincode: str

    def reading_proof(
        self, tree: MerkleTree, index: int, reading_hash: str, certificate_sha256: str
    ) -> Proof:
        """The proof of the reading at leaf ``index`` of the batch's ``tree``."""
        return Proof.from_tree(
            tree, index, reading_hash, device_certificate_sha256=certificate_sha256, **asdict(self)
        )

    def event_proof(
        self, tree: MerkleTree, index: int, event_id: str, event_hash: str
    ) -> EventProof:
        """The proof of the event at leaf ``index`` of the batch's ``tree``."""
        return EventProof.from_tree(
            tree, index, event_id=event_id, event_hash=event_hash, **asdict(self)
        )


# ------------------------------------------------------------------------------ readings


def proof_for(
    store: ReadingStore, device_id: str, seq: int, *, channel: str, chaincode: str
) -> Proof:
    """The inclusion proof of reading (device_id, seq) in its anchored batch."""
    reading = store.reading(device_id, seq)
    if reading is None or reading.batch_id is None or reading.batch_index is None:
        raise ProofUnavailableError(f"reading {device_id} #{seq} is not in a batch yet")
    batch = store.batch(reading.batch_id)
    if batch is None or batch.tx_id is None or batch.block_number is None or not batch.ipfs_cid:
        raise ProofUnavailableError(f"batch {reading.batch_id} is not anchored yet")
    anchored = Anchored(
        batch.batch_id, batch.ipfs_cid, batch.tx_id, batch.block_number, channel, chaincode
    )
    tree = tree_of(store.batch_leaf_hashes(batch.batch_id))
    return anchored.reading_proof(
        tree, reading.batch_index, reading.reading_hash, reading.certificate_sha256
    )


#: Anchored batches never change, so their trees are kept (a few MB for this many batches of
#: 5,000): a proof is then one indexed lookup and an audit path, not a rebuild of the tree.
TREE_CACHE_SIZE = 32


class TreeCache:
    """The Merkle trees of recently proved anchored batches, least recently used evicted."""

    def __init__(self, size: int = TREE_CACHE_SIZE) -> None:
        self._size = size
        self._trees: OrderedDict[str, MerkleTree] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, batch_id: str) -> MerkleTree | None:
        with self._lock:
            tree = self._trees.get(batch_id)
            if tree is not None:
                self._trees.move_to_end(batch_id)
            return tree

    def put(self, batch_id: str, tree: MerkleTree) -> None:
        with self._lock:
            self._trees[batch_id] = tree
            self._trees.move_to_end(batch_id)
            while len(self._trees) > self._size:
                self._trees.popitem(last=False)


_READING = """
SELECT r.reading_hash, r.certificate_sha256, r.batch_id, r.batch_index,
       b.ipfs_cid, b.tx_id, b.block_number, b.first_ts, b.last_ts, b.root
FROM readings r JOIN batches b USING (batch_id)
WHERE r.device_id = %(d)s AND r.seq = %(s)s
  AND r.ts = (SELECT k.ts FROM reading_keys k WHERE k.device_id = %(d)s AND k.seq = %(s)s)
  AND b.state = 'anchored'
"""


def _holds(tree: MerkleTree, index: int, leaf: bytes) -> bool:
    return index < tree.size and tree.leaf(index) == leaf


async def anchored_reading_proof(
    conn: AsyncConnection,
    device_id: str,
    seq: int,
    *,
    trees: TreeCache,
    channel: str,
    chaincode: str,
) -> Proof:
    """The proof of reading ``seq`` of ``device_id`` as stored now (the API's).

    A cached tree serves while it still holds the reading's leaf; otherwise the tree is rebuilt
    from the stored leaves, and kept only if its root is the one the batch was sealed with (a
    proof of changed data is still served, so that its check fails against the ledger).
    ProofUnavailableError until the reading is in an anchored batch; ProofMismatchError when the
    batch's stored leaves no longer hold it."""
    if "\x00" in device_id:  # PostgreSQL text cannot hold it: no device has it
        raise ProofUnavailableError("no such device")
    cursor = await conn.execute(_READING, {"d": device_id, "s": seq})
    row = await cursor.fetchone()
    if row is None:
        raise ProofUnavailableError(
            f"reading {device_id} #{seq} is not anchored yet (not in an anchored batch)"
        )
    reading_hash, fingerprint, batch_id, index, cid, tx_id, block, first, last, root = row
    leaf = leaf_hash(leaf_data_from_reading_hash(reading_hash))
    tree = trees.get(batch_id)
    if tree is None or not _holds(tree, index, leaf):
        cursor = await conn.execute(BATCH_LEAVES, (batch_id, first, last))
        tree = tree_of(h for (h,) in await cursor.fetchall())
        if tree.root.hex() == root:  # only the tree the batch was sealed with is kept
            trees.put(batch_id, tree)
    if not _holds(tree, index, leaf):
        raise ProofMismatchError(
            f"batch {batch_id} does not hold reading {device_id} #{seq} at leaf {index}"
        )
    anchored = Anchored(batch_id, cid, tx_id, block, channel, chaincode)
    return anchored.reading_proof(tree, index, reading_hash, fingerprint)


#: The most readings one range request may span: a multi-day logger's upload on one page is a
#: few requests, and one answer stays a few hundred kilobytes.
MAX_PROOF_RANGE = 1000


async def anchored_reading_proofs(
    conn: AsyncConnection,
    device_id: str,
    first: int,
    last: int,
    *,
    trees: TreeCache,
    channel: str,
    chaincode: str,
) -> tuple[dict[int, Proof], dict[int, str]]:
    """The proofs of readings ``first``..``last`` of ``device_id`` by seq, and why the others
    have none.

    The same proofs `anchored_reading_proof` gives one by one (the buyer page asks for its
    readings' proofs a range at a time: a voyage's hundreds of readings in a few requests).
    """
    if last < first or last - first + 1 > MAX_PROOF_RANGE:
        raise ProofRangeError(f"a range is 1 to {MAX_PROOF_RANGE} readings: got {first}..{last}")
    proofs: dict[int, Proof] = {}
    unavailable: dict[int, str] = {}
    for seq in range(first, last + 1):
        try:
            proofs[seq] = await anchored_reading_proof(
                conn, device_id, seq, trees=trees, channel=channel, chaincode=chaincode
            )
        except (ProofUnavailableError, ProofMismatchError) as error:
            unavailable[seq] = str(error)
    return proofs, unavailable


# ------------------------------------------------------------------------------ events


def event_proof(
    conn: Connection,
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
    hashes = conn.execute(
        "SELECT hash_hex FROM epcis_events WHERE batch_id = %s ORDER BY batch_index",
        (batch_id,),
    ).fetchall()
    tree = tree_of(h for (h,) in hashes)
    if tree.leaf(index) != leaf_hash(leaf_data(uri)):
        raise ProofMismatchError(f"event {event_id} is not leaf {index} of batch {batch_id}")
    anchored = Anchored(batch_id, cid, tx_id, block_number, channel, chaincode)
    return anchored.event_proof(tree, index, event_id, uri)


def anchored_event_proof(
    conn: Connection, event_id: str, *, channel: str, chaincode: str
) -> EventProof:
    """:func:`event_proof`, or ProofUnavailableError while there is none."""
    if "\x00" in event_id:  # PostgreSQL text cannot hold it: no event has it
        raise ProofUnavailableError("no such event")
    proof = event_proof(conn, event_id, channel=channel, chaincode=chaincode)
    if proof is None:
        raise ProofUnavailableError(f"event {event_id} is unknown or not anchored yet")
    return proof


# ------------------------------------------------------------------------------ anchors


def ledger_anchor(ledger: _Ledger, batch_id: str) -> dict[str, Any]:
    """The ledger's anchor record of a batch (readings or ``ev-`` events). AnchorNotFoundError
    when the ledger has none; the ledger's other errors as they are."""
    if not BATCH_ID_PATTERN.fullmatch(batch_id):
        raise AnchorNotFoundError(f"{batch_id!r} is not a batch id")
    try:
        record: dict[str, Any] = json.loads(ledger.evaluate("GetAnchor", batch_id))
    except LedgerError as exc:
        if "not anchored" in str(exc):
            raise AnchorNotFoundError(f"batch {batch_id} is not anchored") from exc
        raise
    return record


def block_number(conn: Connection, batch_id: str) -> int | None:
    """The block our database records for a batch's anchor (None if it knows none)."""
    table = "epcis_batches" if batch_id.startswith("ev-") else "batches"
    row = conn.execute(f"SELECT block_number FROM {table} WHERE batch_id = %s", (batch_id,))
    found = row.fetchone()
    return None if found is None else found[0]
