"""Records: JSON documents keyed by id, written once.

A second write of the same id is refused, so a client that retries after a crash can never
overwrite what the ledger already holds.
"""

from __future__ import annotations

import json
from typing import Any

from chaincode.base import (
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


async def put_record(stub: Any, args: list[str]) -> bytes:
    """PutRecord(id, value): store a JSON value under a new id; an existing id is refused."""
    expect_args(args, ("id", "value"))
    record_id, value = args
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ChaincodeError(f"value of record {record_id} is not JSON: {exc.msg}") from exc
    ledger_key = key(stub, RECORD, record_id)
    if await stub.get_state(ledger_key):
        raise ChaincodeError(f"record {record_id} already exists")
    record = {
        "id": record_id,
        "value": parsed,
        "tx_id": stub.get_txid(),
        "timestamp": tx_time(stub),
        "creator_msp": creator_msp(stub),
    }
    data = dumps(record)
    await stub.put_state(ledger_key, data)
    return data


async def get_record(stub: Any, args: list[str]) -> bytes:
    """GetRecord(id): the stored record, or an error naming the missing id."""
    expect_args(args, ("id",))
    data = await stub.get_state(key(stub, RECORD, args[0]))
    if not data:
        raise ChaincodeError(f"record {args[0]} not found")
    return bytes(data)


async def record_exists(stub: Any, args: list[str]) -> bytes:
    """RecordExists(id): "true" or "false"."""
    expect_args(args, ("id",))
    data = await stub.get_state(key(stub, RECORD, args[0]))
    return b"true" if data else b"false"


async def get_record_history(stub: Any, args: list[str]) -> bytes:
    """GetRecordHistory(id): every committed change of the record, oldest first."""
    expect_args(args, ("id",))
    return dumps(await history(stub, key(stub, RECORD, args[0])))


FUNCTIONS: dict[str, Function] = {
    "PutRecord": put_record,
    "GetRecord": get_record,
    "RecordExists": record_exists,
    "GetRecordHistory": get_record_history,
}
