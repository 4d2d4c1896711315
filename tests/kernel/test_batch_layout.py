"""Batch object layout (tracehub.batch) and inclusion proofs (tracehub.proof).

The worked example of docs/batch-and-proof.md is rebuilt here from the reading test vectors, so
the document cannot drift from the code.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracehub.batch import (
    ReadingBatchFormatError,
    batch_tree,
    decode_batch,
    encode_batch,
    envelope_at,
    read_header,
)
from tracehub.envelope import MAX_ENVELOPE_BYTES, reading_hash
from tracehub.merkle import MerkleTree
from tracehub.proof import Proof, ProofFormatError

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "docs/test-vectors/reading-vectors.json").read_text("utf-8"))
ENVELOPES = [v["envelope"].encode("ascii") for v in VECTORS["vectors"]]
DOC = (ROOT / "docs/batch-and-proof.md").read_text("utf-8")
EXAMPLE_ID = "example-000001"
# Illustrative anchor values used by the document's example.
ANCHOR: dict[str, Any] = {
    "batch_id": EXAMPLE_ID,
    "tx_id": hashlib.sha256(b"illustrative").hexdigest(),
    "block_number": 42,
    "channel": "trace",
    "chaincode": "tracehub",
    "device_certificate_sha256": VECTORS["device_certificate_sha256"],
}


def _raw_cid(data: bytes) -> str:
    """CIDv1, raw codec, sha2-256, base32: what Kubo gives an object of one raw block."""
    cid = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(cid).decode("ascii").lower().rstrip("=")


def _header(batch: bytes) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(batch.split(b"\n", 1)[0])
    return header


def _with_header(batch: bytes, **changes: object) -> bytes:
    header = {**_header(batch), **changes}
    body = batch.split(b"\n", 1)[1]
    return json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n" + body


# --- layout and round trips ---


def test_layout_is_header_then_one_envelope_per_line() -> None:
    batch = encode_batch("gw-1:2026-11-22:000007", ENVELOPES)
    lines = batch.split(b"\n")
    assert lines[-1] == b"" and lines[1:-1] == ENVELOPES  # trailing newline, nothing else
    root = MerkleTree.for_envelopes(ENVELOPES).root.hex()
    assert lines[0] == (
        b'{"format":"tracehub-batch/1","batch_id":"gw-1:2026-11-22:000007","count":4,'
        b'"hash":"sha256","leaf":"rfc6962-sha256(sha256(envelope))","root":"'
        + root.encode()
        + b'"}'
    )
    header = read_header(batch)
    assert (header.batch_id, header.count, header.root.hex()) == ("gw-1:2026-11-22:000007", 4, root)


def test_round_trip_and_random_access() -> None:
    batch = encode_batch("b1", ENVELOPES)
    decoded = decode_batch(batch)
    assert decoded.batch_id == "b1"
    assert decoded.envelopes == tuple(ENVELOPES)
    assert decoded.root == batch_tree(ENVELOPES).root
    for i, envelope in enumerate(ENVELOPES):
        assert envelope_at(batch, i) == envelope
    assert encode_batch("b1", list(decoded.envelopes)) == batch  # one batch, one encoding


_envelope = st.binary(min_size=1, max_size=64).map(
    lambda b: base64.urlsafe_b64encode(b).rstrip(b"=") + b"." + b"x" * (len(b) % 3 + 1)
)


@settings(max_examples=50, deadline=None)
@given(envelopes=st.lists(_envelope, min_size=1, max_size=60, unique=True), data=st.data())
def test_round_trip_random_batches(envelopes: list[bytes], data: st.DataObject) -> None:
    batch = encode_batch("rand", envelopes)
    decoded = decode_batch(batch)
    assert list(decoded.envelopes) == envelopes
    i = data.draw(st.integers(0, len(envelopes) - 1))
    assert envelope_at(batch, i) == envelopes[i]


def test_a_batch_of_one() -> None:
    batch = encode_batch("solo", ENVELOPES[:1])
    assert decode_batch(batch).root == MerkleTree([hashlib.sha256(ENVELOPES[0]).digest()]).root
    assert envelope_at(batch, 0) == ENVELOPES[0]


# --- malformed batches ---

GOOD = encode_batch("b1", ENVELOPES)
GOOD_HEADER, GOOD_BODY = GOOD.split(b"\n", 1)


def _with_line(index: int, envelope: bytes, batch: bytes = GOOD) -> bytes:
    """``batch`` with envelope ``index`` (line ``index + 1``) replaced."""
    lines = batch.split(b"\n")
    lines[index + 1] = envelope
    return b"\n".join(lines)


def _with_byte(index: int, position: int, byte: bytes) -> bytes:
    envelope = ENVELOPES[index]
    return _with_line(index, envelope[:position] + byte + envelope[position + 1 :])


MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "no header line"),
    ("no newline", GOOD_HEADER, "no header line"),
    ("header too long", b"{" + b" " * 2000 + b"}\n" + GOOD_BODY, "no header line"),
    ("not json", b"hello\n" + GOOD_BODY, "not ASCII JSON"),
    ("non-ascii header", GOOD_HEADER.replace(b"b1", b"b\xc3\xa9") + b"\n" + GOOD_BODY, "ASCII"),
    ("array header", b"[]\n" + GOOD_BODY, "exactly"),
    ("missing member", _with_header(GOOD, root=None).replace(b',"root":null', b""), "exactly"),
    ("extra member", _with_header(GOOD, extra=1), "exactly"),
    (
        "repeated member",
        GOOD_HEADER[:-1] + b',"count":4}\n' + GOOD_BODY,
        "repeats member 'count'",
    ),
    ("other format", _with_header(GOOD, format="tracehub-batch/2"), "unknown batch format"),
    ("other hash", _with_header(GOOD, hash="sha512"), "hash/leaf"),
    ("other leaf", _with_header(GOOD, leaf="sha256(envelope)"), "hash/leaf"),
    ("bad batch id", _with_header(GOOD, batch_id="has space"), "batch_id"),
    ("empty batch id", _with_header(GOOD, batch_id=""), "batch_id"),
    ("count zero", _with_header(GOOD, count=0), "count must be an integer >= 1"),
    ("count bool", _with_header(GOOD, count=True), "count must be an integer >= 1"),
    ("count float", _with_header(GOOD, count=4.0), "count must be an integer >= 1"),
    ("count string", _with_header(GOOD, count="4"), "count must be an integer >= 1"),
    ("root upper", _with_header(GOOD, root=_header(GOOD)["root"].upper()), "root must be"),
    ("root short", _with_header(GOOD, root="ab"), "root must be"),
    ("header spaces", GOOD_HEADER.replace(b'","', b'", "', 1) + b"\n" + GOOD_BODY, "canonical"),
    (
        "header reordered",
        json.dumps(_header(GOOD), sort_keys=True, separators=(",", ":")).encode()
        + b"\n"
        + GOOD_BODY,
        "canonical",
    ),
    ("header only", GOOD_HEADER + b"\n", "end with a newline"),
    ("no final newline", GOOD[:-1], "end with a newline"),
    ("blank last line", GOOD + b"\n", "count 4 but the batch holds 5 lines"),
    ("missing line", GOOD.rsplit(b"\n", 2)[0] + b"\n", "count 4 but the batch holds 3 lines"),
    ("extra line", GOOD + b"a.b.c\n", "count 4 but the batch holds 5 lines"),
    ("crlf", GOOD.replace(b"\n", b"\r\n"), "canonical"),
    ("cr in body", GOOD_HEADER + b"\n" + GOOD_BODY.replace(b"\n", b"\r\n"), "envelope 0 has"),
    ("empty line", _with_line(1, b""), "envelope 1 is empty"),
    ("space", _with_byte(2, 9, b" "), "envelope 2 has"),
    ("tab", _with_byte(3, 100, b"\t"), "envelope 3 has"),
    ("8-bit", _with_byte(0, 0, b"\xe9"), "envelope 0 has"),
    ("nul", _with_byte(1, 50, b"\x00"), "envelope 1 has"),
    (
        "changed envelope",
        _with_byte(1, 200, b"A" if ENVELOPES[1][200:201] != b"A" else b"B"),
        "root mismatch",
    ),
    (
        "reordered",
        GOOD_HEADER + b"\n" + b"\n".join([ENVELOPES[1], ENVELOPES[0], *ENVELOPES[2:]]) + b"\n",
        "root mismatch",
    ),
    (
        "repeated envelope",
        GOOD_HEADER + b"\n" + b"\n".join([*ENVELOPES[:3], ENVELOPES[0]]) + b"\n",
        "envelope 3 repeats envelope 0",
    ),
    (
        "oversized envelope",
        GOOD_HEADER + b"\n" + b"\n".join([*ENVELOPES[:3], b"A" * (MAX_ENVELOPE_BYTES + 1)]) + b"\n",
        f"envelope 3 exceeds {MAX_ENVELOPE_BYTES} bytes",
    ),
]


@pytest.mark.parametrize(
    ("data", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_batches_are_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(ReadingBatchFormatError, match=message.replace("(", r"\(")):
        decode_batch(data)


def test_not_bytes_is_refused() -> None:
    with pytest.raises(ReadingBatchFormatError, match="is bytes"):
        decode_batch(GOOD.decode("ascii"))  # type: ignore[arg-type]


def test_envelope_at_checks_header_count_and_line() -> None:
    with pytest.raises(IndexError):
        envelope_at(GOOD, 4)
    with pytest.raises(IndexError):
        envelope_at(GOOD, -1)
    with pytest.raises(TypeError):
        envelope_at(GOOD, True)
    with pytest.raises(ReadingBatchFormatError, match="exactly 4 envelope lines"):
        envelope_at(GOOD + b"\n", 0)
    with pytest.raises(ReadingBatchFormatError, match="exactly 4 envelope lines"):
        envelope_at(GOOD[:-1], 0)
    with pytest.raises(ReadingBatchFormatError, match="unknown batch format"):
        envelope_at(_with_header(GOOD, format="x"), 0)
    with pytest.raises(ReadingBatchFormatError, match="envelope 1 has"):
        envelope_at(_with_byte(1, 9, b" "), 1)
    assert envelope_at(_with_byte(1, 200, b"A"), 2) == ENVELOPES[2]  # the root is not checked


@pytest.mark.parametrize(
    ("batch_id", "envelopes", "message"),
    [
        ("b1", [], "at least one envelope"),
        ("", ENVELOPES, "batch_id"),
        ("-leading", ENVELOPES, "batch_id"),
        ("x" * 129, ENVELOPES, "batch_id"),
        ("b1", [ENVELOPES[0] + b"\n" + ENVELOPES[1]], "envelope 0 has"),
        ("b1", [ENVELOPES[0], b""], "envelope 1 is empty"),
        ("b1", [ENVELOPES[0], "text"], "envelope 1 is not bytes"),
        ("b1", [ENVELOPES[0], ENVELOPES[0]], "envelope 1 repeats envelope 0"),
    ],
)
def test_encode_refuses_what_decode_would(
    batch_id: str, envelopes: list[bytes], message: str
) -> None:
    with pytest.raises(ReadingBatchFormatError, match=message):
        encode_batch(batch_id, envelopes)


@settings(max_examples=300, deadline=None)
@given(
    envelope=st.binary(min_size=1, max_size=80)
    # ASCII around the range's edges (0x1f, space, 0x7f), where a wrong bound would show
    | st.text(st.characters(min_codepoint=0x1F, max_codepoint=0x7F), min_size=1, max_size=80).map(
        str.encode
    )
)
def test_an_envelope_line_is_exactly_printable_ascii_without_space(envelope: bytes) -> None:
    """The line check accepts an envelope iff every byte is in 0x21..0x7e (the format's rule)."""
    printable = all(0x21 <= byte <= 0x7E for byte in envelope)
    if printable:
        assert encode_batch("b1", [envelope]).endswith(b"\n" + envelope + b"\n")
    else:
        with pytest.raises(ReadingBatchFormatError, match="envelope 0 has a byte outside"):
            encode_batch("b1", [envelope])


# --- proofs ---


def _example() -> tuple[bytes, MerkleTree, Proof]:
    batch = encode_batch(EXAMPLE_ID, ENVELOPES)
    tree = batch_tree(ENVELOPES)
    proof = Proof.from_tree(
        tree,
        2,
        reading_hash(ENVELOPES[2]),
        ipfs_cid=_raw_cid(batch),
        **ANCHOR,
    )
    return batch, tree, proof


def test_proofs_for_every_reading_check_and_round_trip() -> None:
    batch, tree, _ = _example()
    for i, envelope in enumerate(ENVELOPES):
        proof = Proof.from_tree(tree, i, reading_hash(envelope), ipfs_cid=_raw_cid(batch), **ANCHOR)
        assert proof.check_path()
        assert proof.root == read_header(batch).root.hex()
        assert Proof.from_json(proof.to_json()) == proof
        assert Proof.from_json(proof.to_json(indent=2).encode()) == proof
        assert reading_hash(envelope_at(batch, proof.index)) == proof.reading_hash


def test_tampered_proofs_fail_the_path_check() -> None:
    _, _, proof = _example()
    other = "0" * 64
    assert not Proof.from_json(proof.to_json().replace(proof.root, other)).check_path()
    assert not Proof.from_json(proof.to_json().replace(proof.reading_hash, other)).check_path()
    assert not Proof.from_json(proof.to_json().replace(proof.leaf_hash, other)).check_path()
    path = proof.audit_path[1]
    assert not Proof.from_json(proof.to_json().replace(path, other)).check_path()
    for index in (0, 1, 3):
        assert not Proof.from_json(
            proof.to_json().replace('"index":2', f'"index":{index}')
        ).check_path()
    assert not Proof.from_json(
        proof.to_json().replace('"batch_size":4', '"batch_size":5')
    ).check_path()


def test_from_tree_refuses_the_wrong_reading() -> None:
    tree = batch_tree(ENVELOPES)
    with pytest.raises(ValueError, match="leaf 1 of the tree is not reading"):
        Proof.from_tree(tree, 1, reading_hash(ENVELOPES[2]), ipfs_cid="bafkqaaa", **ANCHOR)


def _proof_json_with(**changes: object) -> str:
    _, _, proof = _example()
    obj = {**proof.to_dict(), **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not _DROP})


_DROP = object()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "must be a JSON object"),
        (_proof_json_with(version=2), "version must be 1"),
        (_proof_json_with(version=True), "version must be 1"),
        (_proof_json_with(tx_id=_DROP), r"missing \['tx_id'\]"),
        (_proof_json_with(note="hi"), r"unexpected \['note'\]"),
        (_proof_json_with(root="AB" * 32), "root must be 64 lowercase hex"),
        (_proof_json_with(reading_hash=1), "reading_hash must be 64 lowercase hex"),
        (_proof_json_with(index=-1), "index must be an integer >= 0"),
        (_proof_json_with(index=1.0), "index must be an integer >= 0"),
        (_proof_json_with(index=4), "index must be less than batch_size"),
        (_proof_json_with(batch_size=0), "batch_size must be an integer >= 1"),
        (_proof_json_with(block_number=False), "block_number must be an integer >= 0"),
        (_proof_json_with(audit_path="ab"), "audit_path must be a list"),
        (_proof_json_with(audit_path=["ab"]), r"audit_path\[0\] must be 64 lowercase hex"),
        (_proof_json_with(audit_path=["00" * 32] * 65), "at most 64"),
        (_proof_json_with(batch_id="a b"), "batch_id must be"),
        (_proof_json_with(ipfs_cid="/ipfs/x"), "ipfs_cid must be a CID"),
        (_proof_json_with(channel=""), "channel must be"),
        (_proof_json_with(chaincode=None), "chaincode must be"),
        ('{"version":1,"version":1}', "repeats member 'version'"),
    ],
)
def test_malformed_proofs_are_refused(text: str, message: str) -> None:
    with pytest.raises(ProofFormatError, match=message):
        Proof.from_json(text)


# --- the document's worked example ---


def test_worked_example_in_the_document_matches_the_code() -> None:
    batch, tree, proof = _example()
    assert [reading_hash(e) for e in ENVELOPES] == [v["sha256"] for v in VECTORS["vectors"]]
    assert batch.split(b"\n", 1)[0].decode("ascii") in DOC
    assert f"The batch object is {len(batch):,} bytes".replace(",", " ") in DOC
    assert proof.ipfs_cid in DOC
    assert f"```json\n{proof.to_json(indent=2)}\n```" in DOC
    for i in range(len(ENVELOPES)):
        row = f"| {i} | `{reading_hash(ENVELOPES[i])}` | `{tree.leaf(i).hex()}` |"
        assert row in DOC
    assert proof.check_path()
