"""Inclusion proof of one EPCIS event in an anchored event batch.

Distinct from reading proofs (tracehub/proof.py): ``kind`` is ``"epcis-event"``, the leaf data
is the 32 raw bytes of the event's CBV 2.0 SHA-256 (``event_hash`` is the ``ni:`` URI), and there
is no device certificate. Layout and verification: docs/epcis.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import Any

import psycopg

from tracehub.epcis.hashing import HASH_URI, leaf_data
from tracehub.epcis.store import FIND_EVENT
from tracehub.merkle import MerkleTree, leaf_hash, verify_inclusion
from tracehub.proof import BATCH_ID_PATTERN, ProofFormatError
from tracehub.strictjson import refuse_duplicate_members

__all__ = ["EVENT_PROOF_KIND", "EVENT_PROOF_VERSION", "EventProof", "event_proof", "is_event_proof"]

EVENT_PROOF_KIND = "epcis-event"
EVENT_PROOF_VERSION = 1
_HEX_256 = re.compile(r"[0-9a-f]{64}")
_CID = re.compile(r"[A-Za-z0-9]{2,200}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,248}")
_MAX_PATH = 64


@dataclass(frozen=True)
class EventProof:
    """An event's inclusion proof. Hashes are lowercase hex except ``event_hash`` (ni URI)."""

    kind: str
    version: int
    event_id: str
    event_hash: str
    leaf_hash: str
    index: int
    batch_size: int
    audit_path: tuple[str, ...]
    root: str
    batch_id: str
    ipfs_cid: str
    tx_id: str
    block_number: int
    channel: str
    chaincode: str

    def __post_init__(self) -> None:
        _validate(self)

    def check_path(self) -> bool:
        """Offline: the leaf follows from ``event_hash`` and the path leads to ``root``."""
        leaf = leaf_hash(leaf_data(self.event_hash))
        if leaf.hex() != self.leaf_hash:
            return False
        path = [bytes.fromhex(node) for node in self.audit_path]
        return verify_inclusion(leaf, self.index, self.batch_size, path, bytes.fromhex(self.root))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["audit_path"] = list(self.audit_path)
        return out

    def to_json(self, *, indent: int | None = None) -> str:
        separators = (",", ":") if indent is None else (",", ": ")
        return json.dumps(self.to_dict(), indent=indent, separators=separators)

    @classmethod
    def from_json(cls, text: str | bytes) -> EventProof:
        """Parse and validate; raises :class:`tracehub.proof.ProofFormatError`."""
        try:
            obj = json.loads(text, object_pairs_hook=_no_duplicates)
        except (ValueError, RecursionError) as exc:
            raise ProofFormatError(f"proof is not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise ProofFormatError("proof must be a JSON object")
        names = [f.name for f in fields(cls)]
        if set(obj) != set(names):
            missing = sorted(set(names) - set(obj))
            extra = sorted(set(obj) - set(names))
            raise ProofFormatError(f"proof members wrong: missing {missing}, unexpected {extra}")
        if not isinstance(obj["audit_path"], list):
            raise ProofFormatError("audit_path must be a list of hex strings")
        return cls(**{**obj, "audit_path": tuple(obj["audit_path"])})


_no_duplicates = refuse_duplicate_members(
    lambda names: ProofFormatError(f"proof repeats member {names[0]!r}")
)


def is_event_proof(text: str | bytes) -> bool:
    """Whether a proof document claims to be an event proof (by its ``kind``)."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("kind") == EVENT_PROOF_KIND


def _validate(proof: EventProof) -> None:
    def integer(name: str, value: object, minimum: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ProofFormatError(f"{name} must be an integer >= {minimum}")

    def text(name: str, value: object, pattern: re.Pattern[str], rule: str) -> None:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ProofFormatError(f"{name} must be {rule}")

    if proof.kind != EVENT_PROOF_KIND:
        raise ProofFormatError(f"kind must be {EVENT_PROOF_KIND!r}")
    if isinstance(proof.version, bool) or proof.version != EVENT_PROOF_VERSION:
        raise ProofFormatError(f"version must be {EVENT_PROOF_VERSION}")
    if not isinstance(proof.event_id, str) or not 0 < len(proof.event_id) <= 2048:
        raise ProofFormatError("event_id must be a string of 1-2048 characters")
    text("event_hash", proof.event_hash, HASH_URI, "ni:///sha-256;<64 hex>?ver=CBV2.0")
    for name in ("leaf_hash", "root", "tx_id"):
        text(name, getattr(proof, name), _HEX_256, "64 lowercase hex digits")
    integer("index", proof.index, 0)
    integer("batch_size", proof.batch_size, 1)
    if proof.index >= proof.batch_size:
        raise ProofFormatError("index must be less than batch_size")
    integer("block_number", proof.block_number, 0)
    if not isinstance(proof.audit_path, tuple) or len(proof.audit_path) > _MAX_PATH:
        raise ProofFormatError(f"audit_path must be a list of at most {_MAX_PATH} hashes")
    for i, node in enumerate(proof.audit_path):
        text(f"audit_path[{i}]", node, _HEX_256, "64 lowercase hex digits")
    text("batch_id", proof.batch_id, BATCH_ID_PATTERN, "1-128 of A-Z a-z 0-9 . _ : -")
    text("ipfs_cid", proof.ipfs_cid, _CID, "a CID (2-200 alphanumeric characters)")
    text("channel", proof.channel, _NAME, "a channel name")
    text("chaincode", proof.chaincode, _NAME, "a chaincode name")


def event_proof(
    conn: psycopg.Connection,
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
    hashes = [
        r[0]
        for r in conn.execute(
            "SELECT hash_hex FROM epcis_events WHERE batch_id = %s ORDER BY batch_index",
            (batch_id,),
        ).fetchall()
    ]
    tree = MerkleTree([bytes.fromhex(h) for h in hashes])
    leaf = leaf_hash(leaf_data(uri))
    if tree.leaf(index) != leaf:
        raise RuntimeError(f"event {event_id} is not leaf {index} of batch {batch_id}")
    return EventProof(
        kind=EVENT_PROOF_KIND,
        version=EVENT_PROOF_VERSION,
        event_id=event_id,
        event_hash=uri,
        leaf_hash=leaf.hex(),
        index=index,
        batch_size=tree.size,
        audit_path=tuple(node.hex() for node in tree.audit_path(index)),
        root=tree.root.hex(),
        batch_id=batch_id,
        ipfs_cid=cid,
        tx_id=tx_id,
        block_number=block_number,
        channel=channel,
        chaincode=chaincode,
    )
