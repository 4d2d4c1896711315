"""The faults injected during a steady ingest (tests/ha/test_kill_during_ingest.py): what breaks,
for how long, and how it comes back. A new fault is one more `Fault` in `FAULTS`; the harness,
the checks and the results table are shared."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from certs.broker import BrokerEndpoint, admit_site
from certs.pki import PKI
from tests.support.broker import port_open
from tests.support.fabric_nodes import (
    kill,
    orderer_height,
    orderer_names,
    raft_leader,
    restart,
    stop,
)
from tests.support.processes import wait_until
from tests.support.steady_ingest import GatewayGroup
from tracehub.config import PROJECT_DIR, STACK_PRIMARY_PORT, STACK_STANDBY_PORT, Settings

NETWORK = PROJECT_DIR / "network"
#: The replicated stack's site (network/stack.sh: TRACEHUB_SITE, site-1 by default) and its
#: broker's port before the stack's port offset.
SITE = os.environ.get("TRACEHUB_SITE", "site-1")
SITE_BROKER_PORT = 18893


@dataclass
class FaultContext:
    """What a fault acts on, and what it noted for the results (``notes``)."""

    settings: Settings
    gateways: GatewayGroup
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fault:
    """``inject`` breaks something at once; ``down_s`` later ``recover`` brings it back and
    returns once it serves again."""

    name: str
    inject: Callable[[FaultContext], None]
    recover: Callable[[FaultContext], None]
    down_s: float
    #: readings/s offered during this fault, if not the test's rate
    rate: float | None = None
    #: devices publish to the site broker, bridged to the hub, rather than to the hub itself
    via_site: bool = False


def _kill_raft_leader(ctx: FaultContext) -> None:
    leader = raft_leader(ctx.settings.fabric)
    assert leader is not None, "no orderer leads the channel"
    ctx.notes["victim"] = leader
    kill(ctx.settings, leader)


def _restart_orderer(ctx: FaultContext) -> None:
    fabric, victim = ctx.settings.fabric, ctx.notes["victim"]
    # The survivors elected a leader among themselves (two of three are a majority).
    wait_until(lambda: raft_leader(fabric) not in (None, victim), 30, "a new Raft leader")
    ctx.notes["new_leader"] = raft_leader(fabric)
    others = [n for n in orderer_names(fabric) if n != victim]
    target = max(orderer_height(fabric, n) or 0 for n in others)
    started = time.monotonic()
    restart(victim)
    wait_until(
        lambda: (orderer_height(fabric, victim) or 0) >= target,
        90,
        f"restarted {victim} reaching block {target}",
    )
    ctx.notes["caught_up_s"] = round(time.monotonic() - started, 1)


def _kill_kubo(ctx: FaultContext) -> None:
    # Node 1, the hub's own: readers try it first, and every write needs it.
    kill(ctx.settings, "kubo")


def _restart_kubo(ctx: FaultContext) -> None:
    restart("kubo")  # network/stack.sh start kubo: the node, then the re-pin pass


def _kill_gateway(ctx: FaultContext) -> None:
    ctx.notes["victim"] = ctx.gateways.names[0]
    ctx.gateways.kill(ctx.gateways.names[0])


def _restart_gateway(ctx: FaultContext) -> None:
    ctx.gateways.start(ctx.notes["victim"])


def through_site(settings: Settings, device_ids: Sequence[str]) -> Settings:
    """List the devices at the stack's site (the hub broker lets the site read their
    acknowledgements), restart the site broker so its bridge carries them (Mosquitto does not
    reload bridges), and return the settings devices publish with: the site broker's port."""
    admit_site(PKI(settings.pki_dir), BrokerEndpoint.of(settings), SITE, device_ids)
    stop("site-broker")
    restart("site-broker")
    return replace(settings, mqtt_tls_port=SITE_BROKER_PORT + settings.port_offset)


def _kill_hub_broker(ctx: FaultContext) -> None:
    # A crash: what arrived since its last save is gone; the acknowledgements say what to resend.
    kill(ctx.settings, "mosquitto")


def _restart_hub_broker(ctx: FaultContext) -> None:
    restart("mosquitto")


def _failover(settings: Settings, *args: str) -> str:
    done = subprocess.run(
        ["bash", str(NETWORK / "postgres" / "failover.sh"), *args],
        env={**os.environ, "TRACEHUB_RUN": str(settings.run_dir), "TRACEHUB_TOPOLOGY": "ha"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _kill_postgres_primary(ctx: FaultContext) -> None:
    kill(ctx.settings, "postgres")


def _fail_postgres_over(ctx: FaultContext) -> None:
    """What an operator (or their automation) does: promote the standby, which the gateways'
    multi-host connection strings then find; then rejoin the old primary as the new one's
    synchronous standby, so that what is acknowledged is again on two servers."""
    settings, offset = ctx.settings, ctx.settings.port_offset
    started = time.monotonic()
    _failover(settings, "promote", "postgres-standby", "postgres")
    ctx.notes["promoted_s"] = round(time.monotonic() - started, 1)
    _failover(settings, "rejoin", "postgres")
    # The old node's slot in the stack, so `make down-ha` stops it like any component.
    run = settings.run_dir
    with (run / "logs" / "postgres.log").open("ab") as log:
        standby = subprocess.Popen(
            ["bash", str(NETWORK / "postgres" / "standby.sh")],
            env={
                **os.environ,
                "TRACEHUB_RUN": str(run),
                "TRACEHUB_TOPOLOGY": "ha",
                "TRACEHUB_POSTGRES_NODE": "postgres",
                "PGPORT": str(STACK_PRIMARY_PORT + offset),
                "TRACEHUB_POSTGRES_PRIMARY_PORT": str(STACK_STANDBY_PORT + offset),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as network/stack.sh starts components
        )
    (run / "pids" / "postgres.pid").write_text(f"{standby.pid}\n")
    wait_until(
        lambda: port_open(STACK_PRIMARY_PORT + offset), 120, "the old primary back as a standby"
    )
    _failover(settings, "sync", str(STACK_STANDBY_PORT + offset))
    ctx.notes["rejoined_s"] = round(time.monotonic() - started, 1)


FAULTS = [
    Fault("Raft leader killed", _kill_raft_leader, _restart_orderer, down_s=10),
    Fault("one Kubo node killed", _kill_kubo, _restart_kubo, down_s=10),
    Fault("a gateway killed", _kill_gateway, _restart_gateway, down_s=5),
    # Devices publish through the site broker, whose bridge queues what the hub cannot take. A
    # lower rate keeps the test process (a Python publisher, resending what stays unacknowledged)
    # from being the bottleneck while 60 s of readings wait.
    Fault(
        "hub broker down 60 s",
        _kill_hub_broker,
        _restart_hub_broker,
        down_s=60,
        rate=100,
        via_site=True,
    ),
    # Last: afterwards the two servers have swapped roles.
    Fault("PostgreSQL primary failed over", _kill_postgres_primary, _fail_postgres_over, down_s=2),
]
