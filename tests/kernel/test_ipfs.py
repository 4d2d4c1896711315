"""Kubo round trips through tracehub.ipfs against the real daemon."""

from __future__ import annotations

import hashlib
import os

import pytest

from tracehub.ipfs import IPFSError, KuboClient

pytestmark = pytest.mark.integration


def test_round_trips_bytes_by_cid(kubo: KuboClient) -> None:
    data = os.urandom(300_000)  # several chunks: exercises the DAG, not just one block
    cid = kubo.add(data)
    assert cid.startswith("bafy")  # CIDv1, dag-pb root over raw leaves
    assert kubo.cat(cid) == data
    assert kubo.is_pinned(cid)


def test_same_bytes_same_cid_and_small_objects_are_raw_blocks(kubo: KuboClient) -> None:
    data = b"tracehub " + os.urandom(16)
    first, second = kubo.add(data), kubo.add(data)
    assert first == second
    assert first.startswith("bafkr")  # a single raw block: its CID is the sha2-256 of the bytes
    assert kubo.cat(first) == data


def test_pin_and_unpin(kubo: KuboClient) -> None:
    cid = kubo.add(os.urandom(64), pin=False)
    assert not kubo.is_pinned(cid)
    kubo.pin_add(cid)
    assert kubo.is_pinned(cid)
    kubo.pin_rm(cid)
    assert not kubo.is_pinned(cid)


def test_unknown_cid_is_a_clear_error(kubo: KuboClient) -> None:
    with pytest.raises(IPFSError, match="invalid"):
        kubo.cat("not-a-cid")


def test_raw_block_cid_encodes_the_sha256_of_the_content(kubo: KuboClient) -> None:
    data = b"cid check " + os.urandom(8)
    cid = kubo.add(data)
    # base32 multibase 'b', CIDv1 (0x01), raw codec (0x55), sha2-256 (0x12), 32-byte digest (0x20)
    import base64

    raw = base64.b32decode(cid[1:].upper() + "=" * (-len(cid[1:]) % 8))
    assert raw[:4] == bytes([0x01, 0x55, 0x12, 0x20])
    assert raw[4:] == hashlib.sha256(data).digest()


def test_unreachable_daemon_is_a_clear_error() -> None:
    with (
        KuboClient("http://127.0.0.1:9", timeout=2) as client,
        pytest.raises(IPFSError, match="failed"),
    ):
        client.version()
