"""Anchoring through node failures: a steady stream of AnchorBatch submissions while the Raft
leader, then Org1's first peer, is killed (SIGKILL) and started again.

Every submission must commit exactly once: `AnchorBatch` is write-once, so a submission the
client sent twice shows up as an "already anchored" error, and a lost one as a missing anchor.
The pause (the longest stretch without a commit after the kill) is printed; `make test-ha`
shows it.
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
#: a pause longer than this means failover did not work (Raft elects within ~5 s here)
MAX_PAUSE_S = 30.0


@pytest.fixture
def hub(ha: Settings) -> Iterator[Gateway]:
    with connect_org(ha.fabric, 1) as gateway:
        yield gateway


def _check_exactly_once(ha: Settings, stream: AnchorStream) -> None:
    """No errors, distinct tx ids, and Org2's peer holds each anchor with the submitter's tx."""
    assert stream.errors == []
    assert len({s.tx_id for s in stream.submissions}) == len(stream.submissions)
    with connect_org(ha.fabric, 2) as org2:
        contract = org2.get_network(ha.fabric.channel).get_contract(ha.fabric.chaincode)
        for submission in stream.submissions:
            stored = json.loads(contract.evaluate("GetAnchor", submission.batch_id))
            assert stored["tx_id"] == submission.tx_id


def test_raft_leader_killed_and_restarted(ha: Settings, hub: Gateway) -> None:
    fabric = ha.fabric
    contract = hub.get_network(fabric.channel).get_contract(fabric.chaincode)
    leader = raft_leader(fabric)
    assert leader is not None
    stream = AnchorStream(contract).start()
    try:
        stream.wait_for(3, timeout=60)
        killed_at = time.monotonic()
        kill(ha, leader)
        before = len(stream.submissions)
        stream.wait_for(before + AFTER_KILL, timeout=90)
    finally:
        stream.stop()
    pause = stream.longest_wait(killed_at)
    print(f"\nHA: Raft leader {leader} killed: longest pause {pause:.1f} s; "
          f"{len(stream.submissions)} anchors committed exactly once")
    _check_exactly_once(ha, stream)
    assert pause < MAX_PAUSE_S
    new_leader = raft_leader(fabric)
    assert new_leader is not None and new_leader != leader

    started = time.monotonic()
    restart(leader)
    survivors = [n for n in orderer_names(fabric) if n != leader]

    def caught_up() -> bool:
        heights = {orderer_height(fabric, n) for n in [leader, *survivors]}
        return len(heights) == 1 and None not in heights

    wait_until(caught_up, 90, f"restarted {leader} reaches the others' block height")
    print(f"HA: {leader} restarted and caught up in {time.monotonic() - started:.1f} s "
          f"(block {orderer_height(fabric, leader)})")


def test_org1_peer0_killed_submissions_go_through_peer1(ha: Settings, hub: Gateway) -> None:
    fabric = ha.fabric
    contract = hub.get_network(fabric.channel).get_contract(fabric.chaincode)
    stream = AnchorStream(contract).start()
    try:
        stream.wait_for(3, timeout=60)
        peer1_before = peer_height(fabric, 1, 1)
        killed_at = time.monotonic()
        kill(ha, "peer0.org1")
        before = len(stream.submissions)
        stream.wait_for(before + AFTER_KILL, timeout=90)
    finally:
        stream.stop()
    pause = stream.longest_wait(killed_at)
    print(f"\nHA: peer0.org1 killed: longest pause {pause:.1f} s; "
          f"{len(stream.submissions)} anchors committed exactly once")
    _check_exactly_once(ha, stream)
    assert pause < MAX_PAUSE_S
    assert hub.failover is not None
    assert hub.current_peer == 1  # peer1.org1
    peer1_after = peer_height(fabric, 1, 1)
    assert peer1_before is not None and peer1_after is not None
    assert peer1_after >= peer1_before + AFTER_KILL  # the blocks went through peer1.org1

    started = time.monotonic()
    restart("peer0.org1")

    def caught_up() -> bool:
        height = peer_height(fabric, 1, 0)
        return height is not None and height == peer_height(fabric, 1, 1)

    wait_until(caught_up, 90, "restarted peer0.org1 reaches peer1.org1's block height")
    print(f"HA: peer0.org1 restarted and caught up in {time.monotonic() - started:.1f} s "
          f"(height {peer_height(fabric, 1, 0)})")
