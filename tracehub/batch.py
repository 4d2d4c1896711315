"""The batch object stored on IPFS: a JSON header line, then one envelope per line.

Designed so that anyone holding only the object can find reading i (line i + 2) and check the
whole batch against the Merkle root in its header, and through that root against the ledger
anchor (which is authoritative; the header copy lets the object be checked alone). Byte-level
rules: ``docs/batch-and-proof.md``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tracehub.envelope import MAX_ENVELOPE_BYTES
from tracehub.errors import InvalidError
from tracehub.merkle import MerkleTree
from tracehub.proof import BATCH_ID_PATTERN
from tracehub.strictjson import refuse_duplicate_members

__all__ = [
    "FORMAT",
    "HASH",
    "LEAF",
    "BatchHeader",
    "DecodedBatch",
    "ReadingBatchFormatError",
    "batch_tree",
    "decode_batch",
    "encode_batch",
    "envelope_at",
    "read_header",
]

FORMAT = "tracehub-batch/1"
HASH = "sha256"
LEAF = "rfc6962-sha256(sha256(envelope))"
_HEADER_KEYS = ("format", "batch_id", "count", "hash", "leaf", "root")
# Far more than any real header (about 200 bytes), so a blob without a newline fails fast.
_MAX_HEADER_BYTES = 1024
_HEX_256 = re.compile(r"[0-9a-f]{64}")
# Printable ASCII without space: JWS compact serializations are base64url and dots, so this
# excludes nothing valid while guaranteeing no newline, CR or other separator in a line.
# Checked by deleting these bytes and finding nothing left: bytes.translate runs in C, about a
# fifth of a regular expression's time on an envelope (decision 0042).
_ENVELOPE_BYTES = bytes(range(0x21, 0x7F))


class ReadingBatchFormatError(InvalidError):
    """The bytes are not a well-formed batch object (or cannot become one); says why."""


@dataclass(frozen=True)
class BatchHeader:
    """The first line of a batch object."""

    batch_id: str
    count: int
    root: bytes


@dataclass(frozen=True)
class DecodedBatch:
    """A batch object whose layout, envelopes and root have all been checked."""

    batch_id: str
    envelopes: tuple[bytes, ...]
    root: bytes


def batch_tree(envelopes: Sequence[bytes]) -> MerkleTree:
    """The Merkle tree of a batch: leaf i is ``leaf_hash(SHA-256(envelope i))``."""
    return MerkleTree.for_envelopes(envelopes)


def encode_batch(batch_id: str, envelopes: Sequence[bytes]) -> bytes:
    """The batch object for ``envelopes`` in order: header line, then one envelope per line."""
    _check_batch_id(batch_id)
    if not envelopes:
        raise ReadingBatchFormatError("a batch holds at least one envelope")
    for index, envelope in enumerate(envelopes):
        if not isinstance(envelope, bytes):
            raise ReadingBatchFormatError(f"envelope {index} is not bytes")
        _check_envelope(envelope, index)
    leaves = _leaf_data(envelopes)
    header = _header_line(batch_id, len(envelopes), MerkleTree(leaves).root)
    return b"\n".join([header, *envelopes]) + b"\n"


def read_header(data: bytes) -> BatchHeader:
    """Parse and check the header line only (no envelope is read)."""
    return _parse_header(data)[0]


def decode_batch(data: bytes) -> DecodedBatch:
    """Parse a batch object and check everything: header, count, every envelope, the root."""
    header, body_start = _parse_header(data)
    if not data.endswith(b"\n") or len(data) == body_start:
        raise ReadingBatchFormatError("batch must end with a newline after the last envelope")
    envelopes = data[body_start:-1].split(b"\n")
    if len(envelopes) != header.count:
        raise ReadingBatchFormatError(
            f"header says count {header.count} but the batch holds {len(envelopes)} lines"
        )
    for index, envelope in enumerate(envelopes):
        _check_envelope(envelope, index)
    root = MerkleTree(_leaf_data(envelopes)).root
    if root != header.root:
        raise ReadingBatchFormatError(
            f"root mismatch: header says {header.root.hex()}, the envelopes give {root.hex()}"
        )
    return DecodedBatch(batch_id=header.batch_id, envelopes=tuple(envelopes), root=root)


def envelope_at(data: bytes, index: int) -> bytes:
    """Envelope ``index`` (0-based) of a batch object, without hashing the whole batch.

    Checks the header and the line count, not the root: use :func:`decode_batch` for that, or
    check the returned envelope's proof."""
    header, body_start = _parse_header(data)
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError("an envelope index is an int")
    if not 0 <= index < header.count:
        raise IndexError(f"envelope index {index} outside a batch of {header.count}")
    # bytes.count runs in C; it rejects a truncated or padded object before we trust offsets.
    if not data.endswith(b"\n") or data.count(b"\n") != header.count + 1:
        raise ReadingBatchFormatError(f"batch does not hold exactly {header.count} envelope lines")
    start = body_start
    for _ in range(index):
        start = data.index(b"\n", start) + 1
    envelope = data[start : data.index(b"\n", start)]
    _check_envelope(envelope, index)
    return envelope


def _header_line(batch_id: str, count: int, root: bytes) -> bytes:
    # Fixed member order and no whitespace: one batch has one encoding, hence one CID.
    header = {
        "format": FORMAT,
        "batch_id": batch_id,
        "count": count,
        "hash": HASH,
        "leaf": LEAF,
        "root": root.hex(),
    }
    return json.dumps(header, separators=(",", ":")).encode("ascii")


def _parse_header(data: bytes) -> tuple[BatchHeader, int]:
    if not isinstance(data, bytes):
        raise ReadingBatchFormatError("a batch object is bytes")
    end = data.find(b"\n", 0, _MAX_HEADER_BYTES + 1)
    if end < 0:
        raise ReadingBatchFormatError(f"no header line within the first {_MAX_HEADER_BYTES} bytes")
    line = data[:end]
    try:
        header = json.loads(line.decode("ascii"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReadingBatchFormatError(f"header line is not ASCII JSON: {exc}") from exc
    if not isinstance(header, dict) or set(header) != set(_HEADER_KEYS):
        raise ReadingBatchFormatError(
            f"header must be a JSON object with exactly {list(_HEADER_KEYS)}"
        )
    if header["format"] != FORMAT:
        raise ReadingBatchFormatError(
            f"unknown batch format {header['format']!r}, expected {FORMAT!r}"
        )
    if header["hash"] != HASH or header["leaf"] != LEAF:
        raise ReadingBatchFormatError(f"header hash/leaf must be {HASH!r} and {LEAF!r}")
    _check_batch_id(header["batch_id"])
    count = header["count"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ReadingBatchFormatError("header count must be an integer >= 1")
    root = header["root"]
    if not isinstance(root, str) or not _HEX_256.fullmatch(root):
        raise ReadingBatchFormatError("header root must be 64 lowercase hex digits")
    if line != _header_line(header["batch_id"], count, bytes.fromhex(root)):
        raise ReadingBatchFormatError(
            "header line is not in canonical form (member order, spacing)"
        )
    return BatchHeader(batch_id=header["batch_id"], count=count, root=bytes.fromhex(root)), end + 1


_no_duplicates = refuse_duplicate_members(
    lambda names: ReadingBatchFormatError(f"header repeats member {names[0]!r}")
)


def _check_batch_id(batch_id: object) -> None:
    if not isinstance(batch_id, str) or not BATCH_ID_PATTERN.fullmatch(batch_id):
        raise ReadingBatchFormatError(
            "batch_id must be 1-128 of A-Z a-z 0-9 . _ : - (not first . _ : -)"
        )


def _check_envelope(envelope: bytes, index: int) -> None:
    if not envelope:
        raise ReadingBatchFormatError(f"envelope {index} is empty")
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise ReadingBatchFormatError(f"envelope {index} exceeds {MAX_ENVELOPE_BYTES} bytes")
    if envelope.translate(None, _ENVELOPE_BYTES):
        raise ReadingBatchFormatError(
            f"envelope {index} has a byte outside printable ASCII (newline, space, control, 8-bit)"
        )


def _leaf_data(envelopes: Sequence[bytes]) -> list[bytes]:
    leaves = [hashlib.sha256(envelope).digest() for envelope in envelopes]
    # One reading, one position: a repeated envelope would make its index ambiguous.
    if len(set(leaves)) != len(leaves):
        seen: dict[bytes, int] = {}
        for index, leaf in enumerate(leaves):
            if leaf in seen:
                raise ReadingBatchFormatError(f"envelope {index} repeats envelope {seen[leaf]}")
            seen[leaf] = index
    return leaves
