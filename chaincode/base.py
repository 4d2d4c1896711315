"""What every chaincode function shares: argument checks, refusals, ledger JSON, tx time."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

Function = Callable[[Any, list[str]], Awaitable[bytes]]

#: The hub's organisation: it anchors batches and keeps the device registry, and its record
#: namespace is the one the hub cites (docs/ledger.md).
HUB_MSP = "Org1MSP"


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


def creator_roles(stub: Any) -> set[str]:
    """The Fabric node OUs (``client``, ``admin``, ``peer``, ...) of the proposal's signer.

    The peer has already validated the identity against its MSP (NodeOUs enabled), so the
    certificate is the signer's; only its organisational units are read here.
    """
    raw = stub.get_creator().get("idBytes") or b""
    try:
        certificate = x509.load_pem_x509_certificate(bytes(raw))
    except ValueError:
        return set()
    units = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return {str(unit.value) for unit in units}


def require_identity(stub: Any, msp: str, role: str, action: str) -> None:
    """Refuse unless the signer is a ``role`` identity (node OU) of ``msp``."""
    caller = creator_msp(stub)
    roles = creator_roles(stub)
    if caller != msp or role not in roles:
        shown = "/".join(sorted(roles)) or "no role"
        raise ChaincodeError(
            f"access denied: only {msp} {role} identities may {action}, not {caller} {shown}"
        )


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
