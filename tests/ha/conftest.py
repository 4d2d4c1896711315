"""HA: the replicated stack (TRACEHUB_TOPOLOGY=ha), its nodes killed and restarted; and a
PostgreSQL primary with its synchronous standby, of the test's own, failed over.

Run by `make test-ha`, which brings up the whole replicated stack in its own run dir and on its
own ports; the everyday `make test` (single topology) does not collect this directory. Given the
wrong stack, the fixture fails rather than skips: a skipped kill test would hide a broken
set-up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.fabric_nodes import orderer_names, peer_height, raft_leader
from tests.support.steady_ingest import GatewayGroup, Outcome, table
from tracehub.config import PROJECT_DIR, Settings

#: Where the kill tests' results table goes (besides the terminal).
RESULTS = PROJECT_DIR / "bench" / "results" / "ha_faults.json"


@pytest.fixture(scope="session")
def ha(stack: Settings) -> Settings:
    """The replicated stack, checked: every component healthy (the `stack` fixture), three
    orderers with a leader, peers serving, two Kubo nodes."""
    fabric = stack.fabric
    if fabric.topology != "ha":
        pytest.fail("tests/ha needs TRACEHUB_TOPOLOGY=ha and its stack: run `make test-ha`")
    assert len(orderer_names(fabric)) == 3
    assert raft_leader(fabric) is not None, "no orderer leads the channel"
    for org, index in ((1, 0), (1, 1), (2, 0)):
        assert peer_height(fabric, org, index), f"peer{index}.org{org} is not serving"
    assert len(stack.ipfs_endpoints) == 2
    return stack


@pytest.fixture(scope="module")
def gateways(ha: Settings) -> Iterator[GatewayGroup]:
    """Two gateway processes sharing the load, for the module's tests."""
    group = GatewayGroup(ha, 2, ha.run_dir / "logs").start_all()
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture(scope="session")
def fault_results() -> Iterator[list[Outcome]]:
    """Each kill test's outcome; printed as a table and written to RESULTS at the end."""
    outcomes: list[Outcome] = []
    yield outcomes
    if outcomes:
        print("\n\nHA kill tests during a steady ingest:\n" + table(outcomes))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps([o.as_dict() for o in outcomes], indent=2) + "\n")
        print(f"(also in {RESULTS.relative_to(PROJECT_DIR)})")
