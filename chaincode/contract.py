"""TraceHub's chaincode functions, dispatched by name from the Fabric chaincode shim.

Records are JSON documents keyed by id. An id is written once: a second write of the same id is
refused, so a client that retries after a crash can never overwrite what the ledger already holds.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fabric_chaincode_python.fabric_shim import response
from fabric_chaincode_python.fabric_shim.interfaces import Chaincode, ChaincodeStubInterface

RECORD = "record"
Function = Callable[[Any, list[str]], Awaitable[bytes]]


class ContractError(Exception):
    """A refusal with a message meant for the client (returned as a status 500 response)."""


def _record_key(stub: Any, record_id: str) -> str:
    if not record_id:
        raise ContractError("record id must not be empty")
    key: str = stub.create_composite_key(RECORD, [record_id])
    return key


def _timestamp(stub: Any) -> str:
    ts = stub.get_tx_timestamp()
    if ts is None:
        return ""
    text: str = ts.ToJsonString()
    return text


def _expect(args: list[str], names: tuple[str, ...]) -> None:
    if len(args) != len(names):
        raise ContractError(
            f"expected {len(names)} argument(s) ({', '.join(names)}), got {len(args)}"
        )


async def put_record(stub: Any, args: list[str]) -> bytes:
    """PutRecord(id, value): store a JSON value under a new id; an existing id is refused."""
    _expect(args, ("id", "value"))
    record_id, value = args
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ContractError(f"value of record {record_id} is not JSON: {exc.msg}") from exc
    key = _record_key(stub, record_id)
    if await stub.get_state(key):
        raise ContractError(f"record {record_id} already exists")
    record = {
        "id": record_id,
        "value": parsed,
        "tx_id": stub.get_txid(),
        "timestamp": _timestamp(stub),
        "creator_msp": stub.get_creator().get("mspid", ""),
    }
    data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    await stub.put_state(key, data)
    return data


async def get_record(stub: Any, args: list[str]) -> bytes:
    """GetRecord(id): the stored record, or an error naming the missing id."""
    _expect(args, ("id",))
    data = await stub.get_state(_record_key(stub, args[0]))
    if not data:
        raise ContractError(f"record {args[0]} not found")
    return bytes(data)


async def record_exists(stub: Any, args: list[str]) -> bytes:
    """RecordExists(id): "true" or "false"."""
    _expect(args, ("id",))
    data = await stub.get_state(_record_key(stub, args[0]))
    return b"true" if data else b"false"


async def get_record_history(stub: Any, args: list[str]) -> bytes:
    """GetRecordHistory(id): every committed change of the record, oldest first."""
    _expect(args, ("id",))
    history = []
    iterator = await stub.get_history_for_key(_record_key(stub, args[0]))
    async for modification in iterator:
        history.append(
            {
                "tx_id": modification.tx_id,
                "timestamp": modification.timestamp.ToJsonString(),
                "is_delete": modification.is_delete,
                "value": None if modification.is_delete else json.loads(modification.value),
            }
        )
    # The peer returns newest first; an audit trail reads better oldest first.
    history.reverse()
    return json.dumps(history, sort_keys=True, separators=(",", ":")).encode()


FUNCTIONS: dict[str, Function] = {
    "PutRecord": put_record,
    "GetRecord": get_record,
    "RecordExists": record_exists,
    "GetRecordHistory": get_record_history,
}


class TraceHubChaincode(Chaincode):  # type: ignore[misc]
    """Dispatches each invocation to the function it names."""

    @staticmethod
    async def init(stub: ChaincodeStubInterface) -> Any:
        return response.success(b"")

    @staticmethod
    async def invoke(stub: ChaincodeStubInterface) -> Any:
        function_name, args = stub.get_function_and_parameters()
        function = FUNCTIONS.get(function_name)
        if function is None:
            known = ", ".join(sorted(FUNCTIONS))
            return response.error(f"unknown function {function_name!r}; known: {known}")
        try:
            return response.success(await function(stub, list(args)))
        except ContractError as exc:
            return response.error(str(exc))
