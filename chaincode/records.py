"""Records: JSON documents keyed by (namespace, id), written once.

Every organisation writes in its own namespace, its MSP id: a record id is first-come only
within that namespace, so another member cannot squat an id the hub is about to use, and a
reader names whose record it cites. `GetRecord(id)` reads the hub's namespace (the records the
hub publishes, e.g. payment decisions); `GetRecord(id, namespace)` reads any other.

A second write of the same id in a namespace is refused, so a client that retries after a crash
can never overwrite what the ledger already holds.
"""

from __future__ import annotations

import json
from typing import Any

from chaincode.base import (
    HUB_MSP,
    ChaincodeError,
    Function,
    creator_msp,
    dumps,
    expect_args,
    history,
    key,
    tx_time,
)

RECORD = "record"


def _record_key(stub: Any, args: list[str]) -> tuple[str, str]:
    """(ledger key, id) of `id[, namespace]` arguments; the namespace defaults to the hub's."""
    if len(args) not in (1, 2):
        raise ChaincodeError(f"expected 1 or 2 argument(s) (id, namespace), got {len(args)}")
    record_id = args[0]
    namespace = args[1] if len(args) == 2 else HUB_MSP
    return key(stub, RECORD, namespace, record_id), record_id


async def put_record(stub: Any, args: list[str]) -> bytes:
    """PutRecord(id, value): store a JSON value under a new id in the caller's namespace."""
    expect_args(args, ("id", "value"))
    record_id, value = args
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ChaincodeError(f"value of record {record_id} is not JSON: {exc.msg}") from exc
    namespace = creator_msp(stub)
    ledger_key = key(stub, RECORD, namespace, record_id)
    if await stub.get_state(ledger_key):
        raise ChaincodeError(f"record {record_id} already exists in {namespace}")
    record = {
        "id": record_id,
        "namespace": namespace,
        "value": parsed,
        "tx_id": stub.get_txid(),
        "timestamp": tx_time(stub),
        "creator_msp": namespace,
    }
    data = dumps(record)
    await stub.put_state(ledger_key, data)
    return data


async def get_record(stub: Any, args: list[str]) -> bytes:
    """GetRecord(id[, namespace]): the stored record, or an error naming the missing id."""
    ledger_key, record_id = _record_key(stub, args)
    data = await stub.get_state(ledger_key)
    if not data:
        raise ChaincodeError(f"record {record_id} not found")
    return bytes(data)


async def record_exists(stub: Any, args: list[str]) -> bytes:
    """RecordExists(id[, namespace]): "true" or "false"."""
    ledger_key, _ = _record_key(stub, args)
    data = await stub.get_state(ledger_key)
    return b"true" if data else b"false"


async def get_record_history(stub: Any, args: list[str]) -> bytes:
    """GetRecordHistory(id[, namespace]): every committed change of the record, oldest first."""
    ledger_key, _ = _record_key(stub, args)
    return dumps(await history(stub, ledger_key))


FUNCTIONS: dict[str, Function] = {
    "PutRecord": put_record,
    "GetRecord": get_record,
    "RecordExists": record_exists,
    "GetRecordHistory": get_record_history,
}
