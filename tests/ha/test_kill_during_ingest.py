"""Faults during a steady ingest of signed readings on the replicated stack: the Raft leader
orderer, one Kubo node and a gateway process are each killed (SIGKILL) while devices publish
about 300 readings/s to two gateways, and brought back; the hub broker is killed and kept down
for 60 s while devices publish 100 readings/s through the site broker bridged to it; the
PostgreSQL primary is killed, the standby promoted (network/postgres/failover.sh) and the old
primary rejoined as the new one's synchronous standby.

After each, every reading a device was told is stored (the hub's end-to-end acknowledgement) is
stored exactly once in PostgreSQL, on both of its servers, its batch object is pinned on both
Kubo nodes (each node's `pin/ls`), and its batch anchored exactly once: the ledger's anchor,
read through Org2's peer, has the store's root, CID, transaction and count, and the anchors'
counts add up to the readings stored. The pause each fault caused (the longest stall of readings
reaching the store, and of anchors) is printed, with a table of all of them at the end
(tests/ha/conftest.py).
"""

from __future__ import annotations

import time

import pytest

from certs.pki import PKI
from tests.ha.faults import FAULTS, Fault, FaultContext, through_site
from tests.support.gateway import Device
from tests.support.processes import wait_until
from tests.support.steady_ingest import GatewayGroup, Outcome, SteadyIngest
from tracehub.config import Settings

pytestmark = pytest.mark.integration

DEVICES = 10
#: readings/s offered, in all
RATE = 300.0
#: the pipeline flowing before the fault, and after the component is back
WARMUP_S, AFTER_S = 5.0, 8.0
#: a stall this much longer than the fault's down time means recovery did not work
MAX_EXTRA_PAUSE_S = 50.0


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_during_steady_ingest(
    ha: Settings, gateways: GatewayGroup, fault: Fault, fault_results: list[Outcome]
) -> None:
    devices = Device.many(ha, PKI(ha.pki_dir), DEVICES)
    publish_to = through_site(ha, [d.id for d in devices]) if fault.via_site else ha
    time.sleep(3.1)  # certificates are valid from a whole second
    rate = fault.rate or RATE
    ingest = SteadyIngest(publish_to, devices, rate).start()
    context = FaultContext(ha, gateways)
    try:
        wait_until(lambda: ingest.anchored() > 0, 60, "the first readings anchored")
        time.sleep(WARMUP_S)
        since = time.monotonic()
        fault.inject(context)
        time.sleep(fault.down_s)
        fault.recover(context)
        recovered = time.monotonic() - since
        time.sleep(AFTER_S)
        ingest.stop_publishing()
        ingest.drain()
    finally:
        ingest.close()
    outcome = ingest.verify(fault.name, since)
    outcome.notes = {**context.notes, "back_after_s": round(recovered, 1), "rate": rate}
    fault_results.append(outcome)
    print(f"\nHA: {fault.name}: {outcome.as_dict()}")

    assert outcome.lost == 0, "acknowledged readings missing from the store"
    assert outcome.duplicates == 0
    assert outcome.acked == outcome.published == outcome.stored
    assert outcome.pinned_on_both == outcome.batches, "batch objects missing on a Kubo node"
    assert outcome.anchored_once == outcome.batches, "batches not anchored as the store says"
    assert outcome.anchored_readings == outcome.stored  # no reading in two anchored batches
    assert outcome.on_every_server == outcome.stored, "acknowledged readings on one server only"
    assert outcome.pause_s < fault.down_s + MAX_EXTRA_PAUSE_S
