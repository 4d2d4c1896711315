"""RFC 6962 Merkle Tree Hash with SHA-256: roots, audit paths and their verification.

The tree is exactly RFC 6962 §2.1 (re-stated in RFC 9162 §2.1.1): leaves are hashed as
``SHA-256(0x00 || d)``, interior nodes as ``SHA-256(0x01 || left || right)``, the empty tree is
``SHA-256("")``, and a list of n > 1 leaves splits at the largest power of two smaller than n.
The distinct prefixes stop a leaf from being passed off as an interior node (second preimages).

TraceHub's leaf data is the 32-byte SHA-256 of the envelope (the raw form of its reading hash),
so a leaf hash is ``SHA-256(0x00 || SHA-256(envelope))``. A proof then needs only the reading
hash, never the envelope itself. Layout and proof format: ``docs/batch-and-proof.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "envelope_leaf_data",
    "leaf_data_from_reading_hash",
    "leaf_hash",
    "node_hash",
    "verify_inclusion",
]

HASH_SIZE = 32
#: MTH({}) = SHA-256 of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_HEX_256 = re.compile(r"[0-9a-f]{64}")


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf (RFC 6962 §2.1)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node (RFC 6962 §2.1)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def envelope_leaf_data(envelope: bytes) -> bytes:
    """TraceHub's leaf data for an envelope: its raw 32-byte SHA-256 (the reading hash)."""
    return hashlib.sha256(envelope).digest()


def leaf_data_from_reading_hash(reading_hash: str) -> bytes:
    """The 32 leaf-data bytes of a reading hash given as 64 lowercase hex digits."""
    if not isinstance(reading_hash, str) or not _HEX_256.fullmatch(reading_hash):
        raise ValueError("a reading hash is 64 lowercase hex digits")
    return bytes.fromhex(reading_hash)


class MerkleTree:
    """An immutable RFC 6962 tree over a list of leaves, with every level kept for audit paths.

    Built bottom-up, pairing neighbours on each level; an odd node at the end of a level is
    carried up unchanged. That gives exactly RFC 6962's split at the largest power of two
    (the left subtree is always complete), with n - 1 node hashes and no recursion.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaves_data: Sequence[bytes]) -> None:
        """Hash each element of ``leaves_data`` as a leaf and build the tree."""
        self._levels = _build_levels([leaf_hash(data) for data in leaves_data])

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Sequence[bytes]) -> MerkleTree:
        """A tree whose leaves are already hashed (each ``leaf_hash(data)``, 32 bytes)."""
        hashes = [bytes(h) for h in leaf_hashes]
        if any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError(f"leaf hashes are {HASH_SIZE} bytes")
        tree = cls.__new__(cls)
        tree._levels = _build_levels(hashes)
        return tree

    @classmethod
    def for_envelopes(cls, envelopes: Sequence[bytes]) -> MerkleTree:
        """TraceHub's tree over envelopes: leaf i is ``leaf_hash(SHA-256(envelope i))``."""
        return cls([envelope_leaf_data(envelope) for envelope in envelopes])

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        """MTH(D[n]); ``EMPTY_ROOT`` for no leaves."""
        top = self._levels[-1]
        return top[0] if top else EMPTY_ROOT

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        self._check_index(index)
        return self._levels[0][index]

    def audit_path(self, index: int) -> list[bytes]:
        """PATH(index, D[n]) of RFC 6962 §2.1.1: sibling hashes from the leaf up to the root."""
        self._check_index(index)
        path: list[bytes] = []
        position = index
        for level in self._levels[:-1]:
            sibling = position ^ 1
            # No sibling: this node is the odd one out and was carried up without hashing,
            # which is how the power-of-two split shows in a level-by-level build.
            if sibling < len(level):
                path.append(level[sibling])
            position >>= 1
        return path

    def audit_paths(self) -> list[list[bytes]]:
        """The audit path of every leaf, in index order: O(n log n) in total, no hashing."""
        return [self.audit_path(index) for index in range(self.size)]

    def _check_index(self, index: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError("a leaf index is an int")
        if not 0 <= index < self.size:
            raise IndexError(f"leaf index {index} outside a tree of {self.size} leaves")


def _build_levels(leaf_hashes: list[bytes]) -> list[list[bytes]]:
    # A local name: one attribute lookup instead of one per node on large batches.
    sha256 = hashlib.sha256
    levels = [leaf_hashes]
    level = leaf_hashes
    while len(level) > 1:
        above = [
            sha256(_NODE_PREFIX + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            above.append(level[-1])
        levels.append(above)
        level = above
    return levels


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``path`` proves leaf ``leaf_hash`` is at ``index`` of the size-``size`` tree
    with ``root``: the algorithm of RFC 9162 §2.1.3.2. Malformed input gives False."""
    if isinstance(index, bool) or isinstance(size, bool):
        return False
    if not isinstance(index, int) or not isinstance(size, int) or not 0 <= index < size:
        return False
    if not _is_hash(leaf_hash) or not _is_hash(root) or not all(_is_hash(p) for p in path):
        return False
    fn, sn = index, size - 1
    r = bytes(leaf_hash)
    for p in path:
        if sn == 0:
            return False  # the path is longer than the tree is high
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                # fn is the last node of its level with no right sibling: it was carried up, so
                # skip the levels where nothing was hashed into it.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes | bytearray) and len(value) == HASH_SIZE
