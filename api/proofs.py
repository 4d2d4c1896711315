"""Public proof endpoints (no sign-in: anyone may check a record against the ledger).

- ``GET /proofs/readings/{device_id}/{seq}``: a reading's proof (tracehub/proof.py).
- ``GET /proofs/events/{event_id}``: an EPCIS event's proof (tracehub/epcis/proof.py).
- ``GET /ledger/anchors/{batch_id}``: the anchor as the ledger holds it (``GetAnchor``,
  evaluated through Org2's peer, else Org1's), plus ``block_number`` when our database knows it.

404 with a message while a record is unknown or not anchored yet. The ledger connection is
opened on first use, once per app, and closed by :func:`close_ledger` at shutdown.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Path, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api.config import ApiConfig
from api.db import Connection, sync_connection
from ingest.proofs import event_proof
from tracehub.ledger import Contract, Gateway, LedgerError
from tracehub.ledger.local import connect_org
from tracehub.merkle import MerkleTree, leaf_data_from_reading_hash, leaf_hash
from tracehub.proof import BATCH_ID_PATTERN, Proof

router = APIRouter(tags=["proofs"])
_lock = threading.Lock()


def _not_found(message: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=message)


def _contract(app: FastAPI) -> Contract:
    """The chaincode on a lazily opened gateway: Org2's peer, Org1's if Org2's cannot be had."""
    with _lock:
        contract: Contract | None = getattr(app.state, "proofs_contract", None)
        if contract is not None:
            return contract
        config: ApiConfig = app.state.config
        fabric = config.stack.fabric
        errors: list[str] = []
        for org in (2, 1):
            try:
                gateway = connect_org(fabric, org)
            except (LedgerError, OSError) as exc:
                errors.append(f"org{org}: {exc}")
                continue
            app.state.proofs_gateway = gateway
            contract = gateway.get_network(fabric.channel).get_contract(fabric.chaincode)
            app.state.proofs_contract = contract
            return contract
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"ledger unavailable: {errors}")


def close_ledger(app: FastAPI) -> None:
    """Close the ledger gateway if one was opened (called at app shutdown)."""
    with _lock:
        gateway: Gateway | None = getattr(app.state, "proofs_gateway", None)
        app.state.proofs_gateway = None
        app.state.proofs_contract = None
    if gateway is not None:
        gateway.close()


_READING = """
SELECT r.reading_hash, r.certificate_sha256, r.batch_id, r.batch_index,
       b.ipfs_cid, b.tx_id, b.block_number, b.first_ts, b.last_ts, b.root
FROM readings r JOIN batches b USING (batch_id)
WHERE r.device_id = %(d)s AND r.seq = %(s)s
  AND r.ts = (SELECT k.ts FROM reading_keys k WHERE k.device_id = %(d)s AND k.seq = %(s)s)
  AND b.state = 'anchored'
"""
#: Anchored batches never change, so their trees are kept (a few MB for this many batches of
#: 5,000): a proof is then one indexed lookup and an audit path, not a rebuild of the tree.
_TREE_CACHE_SIZE = 32


class _TreeCache:
    """The Merkle trees of recently proved anchored batches, least recently used evicted."""

    def __init__(self, size: int) -> None:
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


def _tree_cache(app: FastAPI) -> _TreeCache:
    with _lock:
        cache: _TreeCache | None = getattr(app.state, "proof_trees", None)
        if cache is None:
            cache = app.state.proof_trees = _TreeCache(_TREE_CACHE_SIZE)
        return cache


@router.get(
    "/proofs/readings/{device_id}/{seq}",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}}, "description": "the proof"},
        404: {"description": "not anchored"},
        409: {"description": "the stored batch does not hold the reading"},
    },
)
async def reading_proof(
    device_id: str,
    seq: Annotated[int, Path(ge=1, lt=2**63)],
    request: Request,
    conn: Connection,
) -> Response:
    """The inclusion proof of reading ``seq`` of ``device_id`` (tracehub/proof.py's JSON)."""
    if "\x00" in device_id:
        raise _not_found("no such device")
    fabric = request.app.state.config.stack.fabric
    trees = _tree_cache(request.app)
    cursor = await conn.execute(_READING, {"d": device_id, "s": seq})
    row = await cursor.fetchone()
    if row is None:
        raise _not_found(
            f"reading {device_id} #{seq} is not anchored yet (not in an anchored batch)"
        )
    reading_hash, fingerprint, batch_id, index, cid, tx_id, block, first, last, root = row
    leaf = leaf_hash(leaf_data_from_reading_hash(reading_hash))
    tree = trees.get(batch_id)
    if tree is None or index >= tree.size or tree.leaf(index) != leaf:
        # Proofs describe what is stored now: a reading that no longer matches the cached tree
        # gets a tree rebuilt from the stored leaves (whose root the ledger will then refuse).
        cursor = await conn.execute(
            "SELECT reading_hash FROM readings"
            " WHERE batch_id = %s AND ts BETWEEN %s AND %s ORDER BY batch_index",
            (batch_id, first, last),
        )
        hashes = await cursor.fetchall()
        tree = MerkleTree([bytes.fromhex(h) for (h,) in hashes])
        if tree.root.hex() == root:  # only the tree the batch was sealed with is kept
            trees.put(batch_id, tree)
    if index >= tree.size or tree.leaf(index) != leaf:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"batch {batch_id} does not hold reading {device_id} #{seq} at leaf {index}",
        )
    proof = Proof.from_tree(
        tree,
        index,
        reading_hash,
        batch_id=batch_id,
        ipfs_cid=cid,
        tx_id=tx_id,
        block_number=block,
        channel=fabric.channel,
        chaincode=fabric.chaincode,
        device_certificate_sha256=fingerprint,
    )
    # Encoded here once, not walked again by FastAPI's generic encoder. No cache headers: the
    # page verifies what the server says now, not what it said before.
    return Response(
        proof.to_json().encode(),
        media_type="application/json",
    )


@router.get("/proofs/events/{event_id:path}", responses={404: {"description": "not anchored"}})
async def event_proof_document(event_id: str, request: Request) -> dict[str, Any]:
    """The inclusion proof of an EPCIS event (by eventID, or hash URI if it had none)."""
    if "\x00" in event_id:
        raise _not_found("no such event")
    fabric = request.app.state.config.stack.fabric

    def work() -> dict[str, Any] | None:
        with sync_connection(request) as conn:
            proof = event_proof(conn, event_id, channel=fabric.channel, chaincode=fabric.chaincode)
            return None if proof is None else proof.to_dict()

    found = await run_in_threadpool(work)
    if found is None:
        raise _not_found(f"event {event_id} is unknown or not anchored yet")
    return found


@router.get("/ledger/anchors/{batch_id}", responses={404: {"description": "not anchored"}})
async def anchor(batch_id: str, request: Request) -> dict[str, Any]:
    """The ledger's anchor record of a batch (readings or ``ev-`` events)."""
    if not BATCH_ID_PATTERN.fullmatch(batch_id):
        raise _not_found(f"{batch_id!r} is not a batch id")
    app = request.app

    def work() -> dict[str, Any]:
        contract = _contract(app)
        try:
            record: dict[str, Any] = json.loads(contract.evaluate("GetAnchor", batch_id))
        except LedgerError as exc:
            if "not anchored" in str(exc):
                raise _not_found(f"batch {batch_id} is not anchored") from exc
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"ledger: {exc}") from exc
        with sync_connection(request) as conn:
            table = "epcis_batches" if batch_id.startswith("ev-") else "batches"
            row = conn.execute(
                f"SELECT block_number FROM {table} WHERE batch_id = %s",
                (batch_id,),
            ).fetchone()
        record["block_number"] = row[0] if row else None
        return record

    return await run_in_threadpool(work)
