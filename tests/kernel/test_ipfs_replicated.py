"""The replicated content store against two real, private Kubo nodes of the test's own
(tests/support/kubo.py), killed with SIGKILL and restarted: writes reach both pin sets or fail
within the write timeout, reads survive either node's loss, a returning node is re-pinned."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kubo import KuboPair, kubo_pair
from tests.support.processes import wait_until
from tracehub.ipfs_replicated import ReplicatedStore, ReplicationError

pytestmark = pytest.mark.integration

WRITE_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KuboPair]:
    with kubo_pair(tmp_path_factory.mktemp("kubo")) as nodes:
        yield nodes


@pytest.fixture
def store(pair: KuboPair) -> Iterator[ReplicatedStore]:
    """The store over both nodes; whatever a test killed is running again afterwards."""
    with ReplicatedStore(pair.urls, write_timeout=WRITE_TIMEOUT_S, retry_interval=0.2) as s:
        yield s
    for node in (1, 2):
        if node not in pair.processes:
            pair.start(node)


def _object() -> bytes:
    return b"replicated object " + secrets.token_bytes(16)


def _pinned_on(pair: KuboPair, node: int) -> set[str]:
    with pair.client(node) as kubo:
        return kubo.pinned()


def test_the_nodes_form_a_private_swarm_and_peer(pair: KuboPair) -> None:
    key = (Path(pair.run_dir) / "ipfs-swarm.key").read_text()
    assert key.startswith("/key/swarm/psk/1.0.0/\n/base16/\n")
    for repo in ("ipfs", "ipfs2"):
        assert (pair.run_dir / repo / "swarm.key").read_text() == key
        assert (pair.run_dir / repo / "swarm.key").stat().st_mode & 0o077 == 0
    wait_until(pair.peered, 30, "node 2 to peer with node 1")


def test_an_added_object_is_pinned_on_both_nodes(pair: KuboPair, store: ReplicatedStore) -> None:
    data = [_object() for _ in range(5)]
    cids = [store.add(d) for d in data]
    for node in (1, 2):
        assert set(cids) <= _pinned_on(pair, node)
        with pair.client(node) as kubo:  # each node holds the bytes itself
            assert [kubo.cat(c, offline=True) for c in cids] == data


@pytest.mark.parametrize("down", [1, 2])
def test_reads_survive_either_node_killed(
    pair: KuboPair, store: ReplicatedStore, down: int
) -> None:
    data = _object()
    cid = store.add(data)
    pair.kill(down)
    assert store.cat(cid) == data
    pair.start(down)
    assert store.cat(cid) == data


def test_a_write_with_a_node_down_fails_clearly_after_the_timeout(
    pair: KuboPair, store: ReplicatedStore
) -> None:
    pair.kill(2)
    started = time.monotonic()
    with pytest.raises(ReplicationError) as raised:
        store.add(_object())
    waited = time.monotonic() - started
    assert WRITE_TIMEOUT_S <= waited < WRITE_TIMEOUT_S + 5
    assert pair.urls[1] in str(raised.value) and "held by 1" in str(raised.value)


def test_a_write_waits_for_a_node_that_returns_within_the_timeout(
    pair: KuboPair, store: ReplicatedStore
) -> None:
    pair.kill(1)
    store.write_timeout = 60.0  # longer than a restart
    data = _object()
    result: list[str] = []
    writer = threading.Thread(target=lambda: result.append(store.add(data)))
    writer.start()
    time.sleep(1.0)
    assert not result, "the write returned while node 1 was down"
    pair.start(1)
    writer.join(timeout=60)
    assert result, "the write did not finish after node 1 returned"
    for node in (1, 2):
        assert result[0] in _pinned_on(pair, node)


def test_a_node_killed_during_writes_lets_no_cid_out_with_one_copy(
    pair: KuboPair, store: ReplicatedStore
) -> None:
    """The CID is what the caller anchors: every CID returned is on both nodes, and the writes
    that could not reach both failed with ReplicationError instead of returning."""
    returned: list[str] = []
    failures: list[ReplicationError] = []
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            try:
                returned.append(store.add(_object()))
            except ReplicationError as exc:
                failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        wait_until(lambda: len(returned) >= 10, 30, "writes before the kill")
        pair.kill(2)
        wait_until(lambda: bool(failures), 3 * WRITE_TIMEOUT_S, "a write to fail")
    finally:
        stop.set()
        writer.join(timeout=3 * WRITE_TIMEOUT_S)
    pair.start(2)
    assert set(returned) <= _pinned_on(pair, 1)
    assert set(returned) <= _pinned_on(pair, 2)


def test_a_returning_node_is_repinned_from_the_other(
    pair: KuboPair, store: ReplicatedStore
) -> None:
    """What node 2 missed (here: written to node 1 alone while node 2 was down, as a writer
    configured with one node, or the single topology's history, leaves it) is copied to it."""
    pair.kill(2)
    data = [_object() for _ in range(3)]
    with pair.client(1) as one:
        cids = [one.add(d) for d in data]
    before = store.repin(cids)
    assert before.unreachable == [pair.urls[1]] and before.repinned == {pair.urls[0]: 0}

    pair.start(2)
    report = store.repin(cids)
    assert report.checked == 3 and report.repinned == {pair.urls[0]: 0, pair.urls[1]: 3}
    assert not report.unreachable and not report.unavailable
    assert set(cids) <= _pinned_on(pair, 2)
    assert store.repin(cids).repinned == {pair.urls[0]: 0, pair.urls[1]: 0}  # nothing left

    pair.kill(1)  # node 2 now serves the bytes on its own
    assert [store.cat(c) for c in cids] == data


def test_an_object_on_no_node_is_reported(pair: KuboPair, store: ReplicatedStore) -> None:
    missing = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    report = store.repin([missing])
    assert report.unavailable == [missing]
