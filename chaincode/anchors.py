"""Batch anchors: one Merkle root per sealed batch of readings, written once.

The anchor names the batch's IPFS object and the range it covers, so an auditor holding a proof
can fetch the batch, recompute the root and compare it with what the ledger holds. A second
anchor for the same batch id is refused, which makes re-submission after a crash harmless.
"""

from __future__ import annotations

import json
import re
from typing import Any

from chaincode.base import (
    HUB_MSP,
    ChaincodeError,
    Function,
    dumps,
    expect_args,
    key,
    require_identity,
    tx_time,
)

ANCHOR = "anchor"
ANCHORING_MSP = HUB_MSP
_HEX_256 = re.compile(r"[0-9a-f]{64}")
_FIELDS = {
    "batch_id": str,
    "root": str,
    "ipfs_cid": str,
    "count": int,
    "first_ts": str,
    "last_ts": str,
    "devices": int,
}


def _parse_anchor(text: str) -> dict[str, Any]:
    try:
        anchor = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChaincodeError(f"anchor is not JSON: {exc.msg}") from exc
    if not isinstance(anchor, dict) or set(anchor) != set(_FIELDS):
        raise ChaincodeError(f"anchor must have exactly the fields {sorted(_FIELDS)}")
    for field, kind in _FIELDS.items():
        if not isinstance(anchor[field], kind) or isinstance(anchor[field], bool):
            raise ChaincodeError(f"anchor field {field} must be a {kind.__name__}")
    if not _HEX_256.fullmatch(anchor["root"]):
        raise ChaincodeError("anchor root must be 64 lowercase hex digits (SHA-256)")
    if anchor["count"] < 1:
        raise ChaincodeError("anchor count must be at least 1")
    return anchor


async def anchor_batch(stub: Any, args: list[str]) -> bytes:
    """AnchorBatch(anchor_json): record a batch's Merkle root; an existing batch id is refused."""
    expect_args(args, ("anchor",))
    # The hub's services (client identities), not its administrators or another member.
    require_identity(stub, ANCHORING_MSP, "client", "anchor batches")
    anchor = _parse_anchor(args[0])
    ledger_key = key(stub, ANCHOR, anchor["batch_id"])
    if await stub.get_state(ledger_key):
        raise ChaincodeError(f"batch {anchor['batch_id']} is already anchored")
    anchor.update(tx_id=stub.get_txid(), anchored_at=tx_time(stub))
    data = dumps(anchor)
    await stub.put_state(ledger_key, data)
    return data


async def get_anchor(stub: Any, args: list[str]) -> bytes:
    """GetAnchor(batch_id): the anchor record, or an error naming the batch."""
    expect_args(args, ("batch_id",))
    data = await stub.get_state(key(stub, ANCHOR, args[0]))
    if not data:
        raise ChaincodeError(f"batch {args[0]} is not anchored")
    return bytes(data)


FUNCTIONS: dict[str, Function] = {"AnchorBatch": anchor_batch, "GetAnchor": get_anchor}
