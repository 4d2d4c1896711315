"""Inclusion proof of one reading: its place in a batch's Merkle tree and where it is anchored.

A proof is a small JSON document (schema and worked example in ``docs/batch-and-proof.md``). Its
audit path can be checked offline against its root (:meth:`Proof.check_path`); the anchor fields
say where to confirm that root on the ledger and where to fetch the batch on IPFS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, Self

from tracehub.errors import InvalidError
from tracehub.merkle import MerkleTree, leaf_data_from_reading_hash, leaf_hash, verify_inclusion
from tracehub.strictjson import refuse_duplicate_members

__all__ = ["BATCH_ID_PATTERN", "PROOF_VERSION", "Proof", "ProofFormatError"]

PROOF_VERSION = 1
#: Batch ids are short ASCII names, safe in JSON, file names, URLs and ledger keys unescaped.
BATCH_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
HEX_256 = re.compile(r"[0-9a-f]{64}")
HEX_256_RULE = "64 lowercase hex digits"
# A CID in any multibase whose alphabet is alphanumeric (base32 "b…", base58btc "Qm…"/"z…").
_CID = re.compile(r"[A-Za-z0-9]{2,200}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,248}")
# A tree of 2**64 leaves has paths of 64 hashes; anything longer cannot verify.
_MAX_PATH = 64


class ProofFormatError(InvalidError):
    """The proof document is malformed; the message names the field."""


class Placed(Protocol):
    """What every proof document says about a leaf's place in an anchored batch."""

    @property
    def leaf_hash(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def audit_path(self) -> tuple[str, ...]: ...
    @property
    def root(self) -> str: ...
    @property
    def batch_id(self) -> str: ...
    @property
    def ipfs_cid(self) -> str: ...
    @property
    def block_number(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def chaincode(self) -> str: ...


@dataclass(frozen=True)
class ProofDocument:
    """The JSON form shared by reading and event proofs (subclasses are frozen dataclasses)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, members in schema order."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["audit_path"] = list(out["audit_path"])
        return out

    def to_json(self, *, indent: int | None = None) -> str:
        """The proof as JSON (ASCII; compact unless ``indent`` is given)."""
        separators = (",", ":") if indent is None else (",", ": ")
        return json.dumps(self.to_dict(), indent=indent, separators=separators)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Parse and validate a proof document; raises :class:`ProofFormatError`."""
        return cls(**parse_members(text, [f.name for f in fields(cls)]))


def parse_members(text: str | bytes, names: Sequence[str]) -> dict[str, Any]:
    """The members of a proof document: a JSON object with exactly ``names``, no repeats, and
    ``audit_path`` a list (returned as a tuple); raises :class:`ProofFormatError`."""
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8
        raise ProofFormatError(f"proof is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProofFormatError("proof must be a JSON object")
    if set(obj) != set(names):
        missing = sorted(set(names) - set(obj))
        extra = sorted(set(obj) - set(names))
        raise ProofFormatError(f"proof members wrong: missing {missing}, unexpected {extra}")
    path = obj["audit_path"]
    if not isinstance(path, list):
        raise ProofFormatError("audit_path must be a list of hex strings")
    return {**obj, "audit_path": tuple(path)}


def path_leads_to_root(proof: Placed, leaf: bytes) -> bool:
    """Offline: ``leaf`` is the proof's leaf hash and its audit path leads to its root."""
    if leaf.hex() != proof.leaf_hash:
        return False
    path = [bytes.fromhex(node) for node in proof.audit_path]
    return verify_inclusion(leaf, proof.index, proof.batch_size, path, bytes.fromhex(proof.root))


@dataclass(frozen=True)
class Proof(ProofDocument):
    """A reading's inclusion proof (``version`` 1). Hashes are lowercase hex strings."""

    version: int
    reading_hash: str
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
    device_certificate_sha256: str

    def __post_init__(self) -> None:
        # Validate on construction too, so a Proof in memory is always well formed.
        _validate(self)

    @classmethod
    def from_tree(
        cls,
        tree: MerkleTree,
        index: int,
        reading_hash: str,
        *,
        batch_id: str,
        ipfs_cid: str,
        tx_id: str,
        block_number: int,
        channel: str,
        chaincode: str,
        device_certificate_sha256: str,
    ) -> Proof:
        """The proof for leaf ``index`` of ``tree``, which must be ``reading_hash``'s leaf."""
        leaf = leaf_hash(leaf_data_from_reading_hash(reading_hash))
        if tree.leaf(index) != leaf:
            raise ValueError(f"leaf {index} of the tree is not reading {reading_hash}")
        return cls(
            version=PROOF_VERSION,
            reading_hash=reading_hash,
            leaf_hash=leaf.hex(),
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
            device_certificate_sha256=device_certificate_sha256,
        )

    def check_path(self) -> bool:
        """Offline check: the leaf hash follows from ``reading_hash`` and the path leads to
        ``root``. It says nothing about the ledger; compare ``root`` with the anchor for that."""
        return path_leads_to_root(self, leaf_hash(bytes.fromhex(self.reading_hash)))


_no_duplicates = refuse_duplicate_members(
    lambda names: ProofFormatError(f"proof repeats member {names[0]!r}")
)


def check_integer(name: str, value: object, minimum: int) -> None:
    """Raise :class:`ProofFormatError` unless ``value`` is an integer >= ``minimum``."""
    # bool is an int subclass; JSON true must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProofFormatError(f"{name} must be an integer >= {minimum}")


def check_text(name: str, value: object, pattern: re.Pattern[str], rule: str) -> None:
    """Raise :class:`ProofFormatError` unless ``value`` is a string matching ``pattern``."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ProofFormatError(f"{name} must be {rule}")


def check_placement(proof: Placed) -> None:
    """Check the members every proof shares, from ``index`` on (its hex hashes are the
    caller's: which ones differs by kind)."""
    check_integer("index", proof.index, 0)
    check_integer("batch_size", proof.batch_size, 1)
    if proof.index >= proof.batch_size:
        raise ProofFormatError("index must be less than batch_size")
    check_integer("block_number", proof.block_number, 0)
    if not isinstance(proof.audit_path, tuple) or len(proof.audit_path) > _MAX_PATH:
        raise ProofFormatError(f"audit_path must be a list of at most {_MAX_PATH} hashes")
    for i, node in enumerate(proof.audit_path):
        check_text(f"audit_path[{i}]", node, HEX_256, HEX_256_RULE)
    check_text("batch_id", proof.batch_id, BATCH_ID_PATTERN, "1-128 of A-Z a-z 0-9 . _ : -")
    check_text("ipfs_cid", proof.ipfs_cid, _CID, "a CID (2-200 alphanumeric characters)")
    check_text("channel", proof.channel, _NAME, "a channel name")
    check_text("chaincode", proof.chaincode, _NAME, "a chaincode name")


def _validate(proof: Proof) -> None:
    if isinstance(proof.version, bool) or proof.version != PROOF_VERSION:
        raise ProofFormatError(f"version must be {PROOF_VERSION}")
    for name in ("reading_hash", "leaf_hash", "root", "tx_id", "device_certificate_sha256"):
        check_text(name, getattr(proof, name), HEX_256, HEX_256_RULE)
    check_placement(proof)
