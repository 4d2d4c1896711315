"""Anchoring through node failures: a steady stream of AnchorBatch submissions while the Raft
leader, a follower orderer, then Org1's first peer, is killed (SIGKILL) and started again.

Every submission must commit exactly once: `AnchorBatch` is write-once, so a submission the
client sent twice shows up as an "already anchored" error, and a lost one as an error or a
missing anchor. The pause (the longest stretch without a commit after the kill) is printed;
`make test-ha` shows it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.support.fabric_nodes import (
    AnchorStream,
    kill,
    orderer_height,
    orderer_names,
    peer_height,
    raft_leader,
    restart,
)
from tests.support.processes import wait_until
from tracehub.config import Settings
from tracehub.ledger import Gateway
from tracehub.ledger.local import connect_org

pytestmark = pytest.mark.integration

#: submissions that must commit after a kill, through the surviving nodes
AFTER_KILL = 8
#: a pause longer than this means failover did not work (an election plus one re-send: ~10 s)
MAX_PAUSE_S = 30.0


@pytest.fixture
def hub(ha: Settings) -> Iterator[Gateway]:
    with connect_org(ha.fabric, 1) as gateway:
        yield gateway


def _run_through_kill(
    ha: Settings, hub: Gateway, component: str, role: str = ""
) -> tuple[AnchorStream, float]:
    """Stream anchors, kill ``component`` once three committed, stream on until AFTER_KILL
    more committed; returns the stream and the pause. The component stays down."""
    fabric = ha.fabric
    stream = AnchorStream(hub.get_network(fabric.channel).get_contract(fabric.chaincode))
    stream.start()
    try:
        stream.wait_for(3, timeout=60)
        killed_at = time.monotonic()
        kill(ha, component)
        stream.wait_for(len(stream.submissions) + AFTER_KILL, timeout=90)
    finally:
        stream.stop()
    pause = stream.longest_wait(killed_at)
    print(
        f"\nHA: {component}{f' ({role})' if role else ''} killed: longest pause {pause:.1f} s; "
        f"{len(stream.submissions)} anchors committed, {len(stream.errors)} errors"
    )
    # Exactly once: no error (no "already anchored", nothing lost), distinct transactions,
    # and Org2's peer holds each anchor with the submitter's transaction.
    assert not stream.errors, stream.errors[:3]
    assert len({s.tx_id for s in stream.submissions}) == len(stream.submissions)
    with connect_org(fabric, 2) as org2:
        contract = org2.get_network(fabric.channel).get_contract(fabric.chaincode)
        for submission in stream.submissions:
            stored = json.loads(contract.evaluate("GetAnchor", submission.batch_id))
            assert stored["tx_id"] == submission.tx_id
    assert pause < MAX_PAUSE_S
    return stream, pause


def _restart(component: str, caught_up: object) -> None:
    """Start ``component`` again and wait until ``caught_up()`` says its height is the others'."""
    started = time.monotonic()
    restart(component)
    assert callable(caught_up)
    wait_until(caught_up, 90, f"restarted {component} reaches the others' block height")
    print(f"HA: {component} restarted, caught up in {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_an_orderer_killed_and_restarted(ha: Settings, hub: Gateway, role: str) -> None:
    """Any one orderer may go: the Raft leader (a new one is elected) or a follower."""
    fabric = ha.fabric
    leader = raft_leader(fabric)
    assert leader is not None
    victim = leader if role == "leader" else next(n for n in orderer_names(fabric) if n != leader)

    def caught_up() -> bool:
        heights = {orderer_height(fabric, name) for name in orderer_names(fabric)}
        return len(heights) == 1 and None not in heights

    try:
        _run_through_kill(ha, hub, victim, f"Raft {role}")
        now_leading = raft_leader(fabric)
        assert now_leading is not None and now_leading != victim
    finally:
        _restart(victim, caught_up)


def test_org1_peer0_killed_submissions_go_through_peer1(ha: Settings, hub: Gateway) -> None:
    fabric = ha.fabric

    def caught_up() -> bool:
        height = peer_height(fabric, 1, 0)
        return height is not None and height == peer_height(fabric, 1, 1)

    try:
        peer1_before = peer_height(fabric, 1, 1)
        _run_through_kill(ha, hub, "peer0.org1")
        assert hub.current_peer == 1  # the client moved to peer1.org1 ...
        peer1_after = peer_height(fabric, 1, 1)
        assert peer1_before is not None and peer1_after is not None
        assert peer1_after >= peer1_before + AFTER_KILL  # ... which committed the blocks
    finally:
        _restart("peer0.org1", caught_up)
