"""RFC 6962 Merkle tree (tracehub.merkle): published test vectors, a recursive reference, and
hypothesis for inclusion proofs.

Known-answer vectors are the RFC 6962 / SHA-256 reference-tree vectors of the Certificate
Transparency implementations:

- google/certificate-transparency, cpp/merkletree/merkle_tree_test.cc: ``kInputs``,
  ``kSHA256EmptyTreeHash``, ``kSHA256Roots`` and ``kSHA256Paths`` (whose leaf numbers are
  1-based there; converted to 0-based indices here);
- transparency-dev/merkle, testonly/constants.go (``LeafInputs``, ``NodeHashes``,
  ``RootHashes``) and proof/verify_test.go (``inclusionProofs``, the same paths, and the
  corruption probes mirrored in :func:`_corruptions`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracehub.envelope import reading_hash
from tracehub.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    envelope_leaf_data,
    leaf_data_from_reading_hash,
    leaf_hash,
    node_hash,
    verify_inclusion,
)

INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
# Root of the tree over INPUTS[:n], for n = 0..8 (n = 0: SHA-256 of the empty string).
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# Level 0 (leaf hashes) of the 8-leaf tree, transparency-dev NodeHashes()[0].
LEAF_HASHES = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
]
# (0-based leaf index, tree size, audit path).
PATHS: list[tuple[int, int, list[str]]] = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


# --- reference: RFC 6962 §2.1 and §2.1.1 transcribed literally (recursive) ---


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def ref_mth(data: Sequence[bytes]) -> bytes:
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = _split(len(data))
    return hashlib.sha256(b"\x01" + ref_mth(data[:k]) + ref_mth(data[k:])).digest()


def ref_path(m: int, data: Sequence[bytes]) -> list[bytes]:
    if len(data) == 1:
        return []
    k = _split(len(data))
    if m < k:
        return [*ref_path(m, data[:k]), ref_mth(data[k:])]
    return [*ref_path(m - k, data[k:]), ref_mth(data[:k])]


def _flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- known answers ---


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_ct_vectors(size: int) -> None:
    tree = MerkleTree(INPUTS[:size])
    assert tree.size == size
    assert tree.root.hex() == ROOTS[size]


def test_empty_tree_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == ROOTS[0]
    assert MerkleTree([]).root == EMPTY_ROOT
    with pytest.raises(IndexError):
        MerkleTree([]).audit_path(0)


def test_leaf_and_node_hashes_match_the_vectors() -> None:
    assert [leaf_hash(d).hex() for d in INPUTS] == LEAF_HASHES
    tree = MerkleTree(INPUTS)
    assert [tree.leaf(i).hex() for i in range(8)] == LEAF_HASHES
    # NodeHashes()[1][0] and [2][0]: MTH of the first 2 and first 4 leaves.
    assert node_hash(tree.leaf(0), tree.leaf(1)).hex() == ROOTS[2]
    assert node_hash(bytes.fromhex(ROOTS[2]), MerkleTree(INPUTS[2:4]).root).hex() == ROOTS[4]


@pytest.mark.parametrize(("index", "size", "path"), PATHS)
def test_audit_paths_match_the_ct_vectors(index: int, size: int, path: list[str]) -> None:
    tree = MerkleTree(INPUTS[:size])
    assert [p.hex() for p in tree.audit_path(index)] == path
    assert [p.hex() for p in tree.audit_paths()[index]] == path
    leaf = leaf_hash(INPUTS[index])
    nodes = [bytes.fromhex(p) for p in path]
    assert verify_inclusion(leaf, index, size, nodes, bytes.fromhex(ROOTS[size]))


def _corruptions(
    index: int, size: int, path: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, bytes, int, int, list[bytes], bytes]]:
    """The probes of transparency-dev/merkle's corruptInclusionProof, in our argument order."""
    probes = [
        ("index - 1", leaf, index - 1, size, path, root),
        ("index + 1", leaf, index + 1, size, path, root),
        ("index ^ 2", leaf, index ^ 2, size, path, root),
        ("size * 2", leaf, index, size * 2, path, root),
        ("size // 2", leaf, index, size // 2, path, root),
        ("wrong leaf", b"WrongLeaf", index, size, path, root),
        ("other leaf", SOME_HASH, index, size, path, root),
        ("empty root", leaf, index, size, path, EMPTY_ROOT),
        ("random root", leaf, index, size, path, SOME_HASH),
        ("trailing garbage", leaf, index, size, [*path, b""], root),
        ("trailing root", leaf, index, size, [*path, root], root),
        ("preceding garbage", leaf, index, size, [b"", *path], root),
        ("preceding root", leaf, index, size, [root, *path], root),
    ]
    for i in range(len(path)):
        wrong = list(path)
        wrong[i] = _flip(wrong[i], 3)
        probes.append((f"path[{i}] bit 3", leaf, index, size, wrong, root))
    if path:
        probes.append(("removed component", leaf, index, size, path[:-1], root))
    if len(path) > 1:
        probes.append(
            ("inserted component", leaf, index, size, [path[0], SOME_HASH, *path[1:]], root)
        )
    return probes


@pytest.mark.parametrize(("index", "size", "path"), PATHS)
def test_corrupted_vector_proofs_fail(index: int, size: int, path: list[str]) -> None:
    nodes = [bytes.fromhex(p) for p in path]
    probes = _corruptions(index, size, nodes, bytes.fromhex(ROOTS[size]), leaf_hash(INPUTS[index]))
    accepted = [desc for desc, *args in probes if verify_inclusion(*args)]  # type: ignore[arg-type]
    assert accepted == []


def test_degenerate_inputs_do_not_verify() -> None:
    for index, size in ((0, 0), (1, 0), (2, 1), (-1, 1)):
        assert not verify_inclusion(SOME_HASH, index, size, [], SOME_HASH)
        assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
    one = leaf_hash(b"data")
    assert verify_inclusion(one, 0, 1, [], one)  # a 1-leaf tree's root is its leaf hash
    assert not verify_inclusion(one, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], one)
    assert not verify_inclusion(one, 0, 1, [one], one)  # path longer than the tree is high
    assert not verify_inclusion(one, True, 2, [one], node_hash(one, one))
    assert not verify_inclusion(one, 0, 1, [], one[:31])


# --- against the recursive reference ---


def test_iterative_tree_equals_the_recursive_definition() -> None:
    data = [bytes([i]) for i in range(70)]
    for n in range(1, len(data) + 1):
        tree = MerkleTree(data[:n])
        assert tree.root == ref_mth(data[:n]), n
        paths = tree.audit_paths()
        for m in range(n):
            assert paths[m] == ref_path(m, data[:n]), (n, m)


def test_from_leaf_hashes_and_bad_indices() -> None:
    tree = MerkleTree(INPUTS)
    same = MerkleTree.from_leaf_hashes([bytes.fromhex(h) for h in LEAF_HASHES])
    assert same.root == tree.root and same.audit_paths() == tree.audit_paths()
    with pytest.raises(ValueError, match="32 bytes"):
        MerkleTree.from_leaf_hashes([b"short"])
    for bad in (-1, 8):
        with pytest.raises(IndexError):
            tree.audit_path(bad)
    with pytest.raises(TypeError):
        tree.audit_path(True)


def test_large_batch_paths_all_verify() -> None:
    data = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(5_003)]
    tree = MerkleTree(data)
    paths = tree.audit_paths()
    assert max(len(p) for p in paths) == 13  # ceil(log2(5003))
    assert all(verify_inclusion(tree.leaf(i), i, 5_003, p, tree.root) for i, p in enumerate(paths))


# --- TraceHub's leaf choice ---


def test_envelope_leaf_is_the_reading_hash_bytes() -> None:
    envelope = b"eyJhbGciOiJFUzI1NiJ9.eyJ2IjoxfQ.c2ln"
    digest = reading_hash(envelope)
    assert envelope_leaf_data(envelope) == bytes.fromhex(digest)
    assert leaf_data_from_reading_hash(digest) == bytes.fromhex(digest)
    tree = MerkleTree.for_envelopes([envelope, b"x.y.z"])
    assert tree.leaf(0) == hashlib.sha256(b"\x00" + hashlib.sha256(envelope).digest()).digest()
    for bad in (digest.upper(), digest[:-1], digest + "0", "g" * 64):
        with pytest.raises(ValueError):
            leaf_data_from_reading_hash(bad)


# --- hypothesis ---


def _distinct_leaves(n: int, salt: bytes) -> list[bytes]:
    # Distinct leaves: with two equal leaves one path may legitimately prove either position.
    return [hashlib.sha256(salt + i.to_bytes(4, "big")).digest() for i in range(n)]


def _bits_that_change_index(size: int) -> list[int]:
    return [*range(max(size.bit_length(), 1) + 1), 31, 63]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), salt=st.binary(max_size=8), data=st.data())
def test_every_path_verifies_and_any_bit_flip_fails(
    n: int, salt: bytes, data: st.DataObject
) -> None:
    tree = MerkleTree(_distinct_leaves(n, salt))
    root = tree.root
    paths = tree.audit_paths()
    for index in range(n):
        assert verify_inclusion(tree.leaf(index), index, n, paths[index], root)

    index = data.draw(st.integers(0, n - 1), label="index")
    leaf, path = tree.leaf(index), paths[index]
    bit = data.draw(st.integers(0, 255), label="bit")
    assert not verify_inclusion(_flip(leaf, bit), index, n, path, root)
    assert not verify_inclusion(leaf, index, n, path, _flip(root, bit))
    for k in range(len(path)):
        wrong = list(path)
        wrong[k] = _flip(wrong[k], bit)
        assert not verify_inclusion(leaf, index, n, wrong, root)
    for b in _bits_that_change_index(n):
        assert not verify_inclusion(leaf, index ^ (1 << b), n, path, root)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 8, 9, 13])
def test_exhaustive_single_bit_flips_fail(n: int) -> None:
    tree = MerkleTree(_distinct_leaves(n, b"exhaustive"))
    root = tree.root
    for index, path in enumerate(tree.audit_paths()):
        leaf = tree.leaf(index)
        assert verify_inclusion(leaf, index, n, path, root)
        for bit in range(256):
            assert not verify_inclusion(_flip(leaf, bit), index, n, path, root)
            assert not verify_inclusion(leaf, index, n, path, _flip(root, bit))
            for k in range(len(path)):
                wrong = list(path)
                wrong[k] = _flip(wrong[k], bit)
                assert not verify_inclusion(leaf, index, n, wrong, root)
        for b in _bits_that_change_index(n):
            assert not verify_inclusion(leaf, index ^ (1 << b), n, path, root)
