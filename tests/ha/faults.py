"""The faults injected during a steady ingest (tests/ha/test_kill_during_ingest.py): what breaks,
for how long, and how it comes back. A new fault (a database failover, a broker outage) is one
more `Fault` in `FAULTS`; the harness, the checks and the results table are shared."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.fabric_nodes import kill, orderer_height, orderer_names, raft_leader, restart
from tests.support.processes import wait_until
from tests.support.steady_ingest import GatewayGroup
from tracehub.config import Settings


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


FAULTS = [
    Fault("Raft leader killed", _kill_raft_leader, _restart_orderer, down_s=10),
    Fault("one Kubo node killed", _kill_kubo, _restart_kubo, down_s=10),
    Fault("a gateway killed", _kill_gateway, _restart_gateway, down_s=5),
]
