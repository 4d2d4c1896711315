"""Inclusion proof of one EPCIS event in an anchored event batch.

Distinct from reading proofs (tracehub/proof.py): ``kind`` is ``"epcis-event"``, the leaf data
is the 32 raw bytes of the event's CBV 2.0 SHA-256 (``event_hash`` is the ``ni:`` URI), and there
is no device certificate. Layout and verification: docs/epcis.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tracehub.epcis.hashing import HASH_URI, leaf_data
from tracehub.merkle import MerkleTree, leaf_hash
from tracehub.proof import (
    HEX_256,
    HEX_256_RULE,
    ProofDocument,
    ProofFormatError,
    check_placement,
    check_text,
    path_leads_to_root,
)

__all__ = ["EVENT_PROOF_KIND", "EVENT_PROOF_VERSION", "EventProof", "is_event_proof"]

EVENT_PROOF_KIND = "epcis-event"
EVENT_PROOF_VERSION = 1


@dataclass(frozen=True)
class EventProof(ProofDocument):
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
        return path_leads_to_root(self, leaf_hash(leaf_data(self.event_hash)))

    @classmethod
    def from_tree(
        cls,
        tree: MerkleTree,
        index: int,
        *,
        event_id: str,
        event_hash: str,
        batch_id: str,
        ipfs_cid: str,
        tx_id: str,
        block_number: int,
        channel: str,
        chaincode: str,
    ) -> EventProof:
        """The proof for leaf ``index`` of ``tree`` (the caller knows it is ``event_hash``'s)."""
        return cls(
            kind=EVENT_PROOF_KIND,
            version=EVENT_PROOF_VERSION,
            event_id=event_id,
            event_hash=event_hash,
            leaf_hash=tree.leaf(index).hex(),
            index=index,
            batch_size=tree.size,
            audit_path=tuple(node.hex() for node in tree.audit_path(index)),
            root=tree.root.hex(),
            batch_id=batch_id,
            ipfs_cid=ipfs_cid,
            tx_id=tx_id,
            block_number=block_number,
            channel=channel,
            chaincode=chaincode,
        )


def is_event_proof(text: str | bytes) -> bool:
    """Whether a proof document claims to be an event proof (by its ``kind``)."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("kind") == EVENT_PROOF_KIND


def _validate(proof: EventProof) -> None:
    if proof.kind != EVENT_PROOF_KIND:
        raise ProofFormatError(f"kind must be {EVENT_PROOF_KIND!r}")
    if isinstance(proof.version, bool) or proof.version != EVENT_PROOF_VERSION:
        raise ProofFormatError(f"version must be {EVENT_PROOF_VERSION}")
    if not isinstance(proof.event_id, str) or not 0 < len(proof.event_id) <= 2048:
        raise ProofFormatError("event_id must be a string of 1-2048 characters")
    check_text("event_hash", proof.event_hash, HASH_URI, "ni:///sha-256;<64 hex>?ver=CBV2.0")
    for name in ("leaf_hash", "root", "tx_id"):
        check_text(name, getattr(proof, name), HEX_256, HEX_256_RULE)
    check_placement(proof)
