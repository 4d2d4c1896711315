"""HA: the replicated Fabric network (TRACEHUB_TOPOLOGY=ha), its nodes killed and restarted;
and a PostgreSQL primary with its synchronous standby, of the test's own, failed over.

Run by `make test-ha`, which brings up an HA Fabric network in its own run dir and on its own
ports; the everyday `make test` (single topology) does not collect this directory. Given the
wrong network, the fixture fails rather than skips: a skipped kill test would hide a broken
set-up.
"""

from __future__ import annotations

import pytest

from tests.support.fabric_nodes import orderer_names, peer_height, raft_leader
from tracehub.config import Settings


@pytest.fixture(scope="session")
def ha(settings: Settings) -> Settings:
    """The HA Fabric network, checked: three orderers with a leader, peers serving."""
    fabric = settings.fabric
    if fabric.topology != "ha":
        pytest.fail("tests/ha needs TRACEHUB_TOPOLOGY=ha and its network: run `make test-ha`")
    assert len(orderer_names(fabric)) == 3
    assert raft_leader(fabric) is not None, "no orderer leads the channel"
    for org, index in ((1, 0), (1, 1), (2, 0)):
        assert peer_height(fabric, org, index), f"peer{index}.org{org} is not serving"
    return settings
