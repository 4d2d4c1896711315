"""Submitting one batch anchor, exactly once, whatever happened before.

`AnchorBatch` is write-once on the ledger. After a crash between the ledger's commit and ours,
a re-submission is refused ("already anchored"); the ledger's own record is then taken — if it
holds the same root — with its block found through the peer's query system chaincode (qscc).
Reading batches (gateway/service.py) and EPCIS event batches (ingest/epcis/anchoring.py)
anchor through this one function.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from fabric_protos.common import common_pb2 as _common_pb2

from tracehub.ledger import EndorseError, LedgerError

# The generated protobuf module has no type information.
common_pb2: Any = _common_pb2


class AnchorContract(Protocol):
    def submit(self, name: str, *args: str) -> Any: ...

    def evaluate(self, name: str, *args: str) -> bytes: ...


def block_of(block_lookup: AnchorContract | None, channel: str, tx_id: str) -> int:
    """The number of the block holding transaction `tx_id` (qscc GetBlockByTxID)."""
    if block_lookup is None:
        raise LedgerError("no block lookup (qscc) configured for a re-submitted anchor")
    block: Any = common_pb2.Block()
    block.ParseFromString(block_lookup.evaluate("GetBlockByTxID", channel, tx_id))
    return int(block.header.number)


def submit_anchor(
    contract: AnchorContract,
    anchor: Mapping[str, object],
    *,
    block_lookup: AnchorContract | None,
    channel: str,
) -> tuple[str, int]:
    """Anchor `anchor` (AnchorBatch's JSON fields); returns (tx id, block number)."""
    try:
        committed = contract.submit("AnchorBatch", json.dumps(anchor, sort_keys=True))
        return str(committed.tx_id), int(committed.block_number)
    except EndorseError as exc:
        if "already anchored" not in str(exc):
            raise
        existing = json.loads(contract.evaluate("GetAnchor", str(anchor["batch_id"])))
        if existing["root"] != anchor["root"]:
            raise LedgerError(f"batch {anchor['batch_id']} is anchored with another root") from exc
    return existing["tx_id"], block_of(block_lookup, channel, existing["tx_id"])
