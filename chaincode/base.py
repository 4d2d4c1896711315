"""What every chaincode function shares: argument checks, refusals, ledger JSON, tx time."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Function = Callable[[Any, list[str]], Awaitable[bytes]]


class ChaincodeError(Exception):
    """A refusal with a message meant for the client (returned as a status 500 response).

    The root of the chaincode's errors. It does not derive from tracehub.errors.TraceHubError:
    the chaincode runs in the peers' trust domain and imports nothing of the hub (an
    import-linter contract), and a client sees its refusals as ledger errors anyway.
    """


def expect_args(args: list[str], names: tuple[str, ...]) -> None:
    """Refuse a call whose argument count differs from the function's parameters."""
    if len(args) != len(names):
        raise ChaincodeError(
            f"expected {len(names)} argument(s) ({', '.join(names)}), got {len(args)}"
        )


def key(stub: Any, object_type: str, *attributes: str) -> str:
    """A composite ledger key; empty attributes are refused."""
    if not all(attributes):
        raise ChaincodeError(f"{object_type} id must not be empty")
    composite: str = stub.create_composite_key(object_type, list(attributes))
    return composite


def tx_time(stub: Any) -> str:
    """The transaction's timestamp (RFC 3339), the same on every endorsing peer."""
    ts = stub.get_tx_timestamp()
    return "" if ts is None else str(ts.ToJsonString())


def creator_msp(stub: Any) -> str:
    """MSP id of the identity that signed the proposal."""
    return str(stub.get_creator().get("mspid", ""))


def dumps(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, so every peer writes identical bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


async def history(stub: Any, ledger_key: str) -> list[dict[str, Any]]:
    """Every committed change of a key, oldest first (the peer returns newest first)."""
    changes = []
    iterator = await stub.get_history_for_key(ledger_key)
    async for modification in iterator:
        changes.append(
            {
                "tx_id": modification.tx_id,
                "timestamp": modification.timestamp.ToJsonString(),
                "is_delete": modification.is_delete,
                "value": None if modification.is_delete else json.loads(modification.value),
            }
        )
    changes.reverse()
    return changes
