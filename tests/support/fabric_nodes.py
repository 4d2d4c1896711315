"""The Fabric nodes of a running network, seen from outside: their operations metrics (Raft
leader, block heights), and killing or restarting one by the pid its run dir recorded."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx

from tracehub.config import PROJECT_DIR, FabricSettings, Settings
from tracehub.ledger import Contract, LedgerError

STACK = str(PROJECT_DIR / "network" / "stack.sh")
ROOT = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def metric(url: str, name: str, channel: str) -> int | None:
    """The value of ``name{channel=...}`` on a node's /metrics; None when the node is down."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=3).text
    except httpx.HTTPError:
        return None
    found = re.search(rf'^{name}{{channel="{channel}"}} (\d+)', text, re.MULTILINE)
    return int(found.group(1)) if found else None


def orderer_names(fabric: FabricSettings) -> list[str]:
    """Component names (network/stack.sh) of the orderers, in the order of orderer_ops_urls."""
    return ["orderer" if n == 0 else f"orderer{n + 1}" for n in range(len(fabric.orderer_ops_urls))]


def raft_leader(fabric: FabricSettings) -> str | None:
    """The orderer that leads the channel's Raft cluster now, if one does."""
    for name, url in zip(orderer_names(fabric), fabric.orderer_ops_urls, strict=True):
        if metric(url, "consensus_etcdraft_is_leader", fabric.channel) == 1:
            return name
    return None


def orderer_height(fabric: FabricSettings, name: str) -> int | None:
    """The number of the last block orderer ``name`` committed."""
    url = fabric.orderer_ops_urls[orderer_names(fabric).index(name)]
    return metric(url, "consensus_etcdraft_committed_block_number", fabric.channel)


def peer_height(fabric: FabricSettings, org: int, index: int = 0) -> int | None:
    """The block height of peer ``index`` of org ``org``."""
    return metric(fabric.peer_ops_url(org, index), "ledger_blockchain_height", fabric.channel)


def kill(settings: Settings, component: str) -> None:
    """SIGKILL the component's process group (a crash, not a clean stop)."""
    pid = int((settings.run_dir / "pids" / f"{component}.pid").read_text())
    os.killpg(pid, signal.SIGKILL)
    while _alive(pid):
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # A killed process stays a zombie until it is reaped; it no longer serves.
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _stack(command: str, component: str) -> None:
    """``network/stack.sh COMMAND COMPONENT`` (same run dir and topology as this process)."""
    done = subprocess.run(
        ["bash", STACK, command, component], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr


def restart(component: str) -> None:
    """Start a killed or stopped component again through network/stack.sh."""
    _stack("start", component)


def stop(component: str) -> None:
    """Stop a component cleanly through network/stack.sh."""
    _stack("stop", component)


@dataclass
class Submission:
    batch_id: str
    tx_id: str
    block: int
    started: float
    committed: float


@dataclass
class AnchorStream:
    """Anchors submitted one after another from a thread, until :meth:`stop`."""

    contract: Contract
    submissions: list[Submission] = field(default_factory=list)
    errors: list[tuple[str, LedgerError]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> AnchorStream:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            batch_id = f"ha-{uuid.uuid4().hex}"
            anchor = {
                "batch_id": batch_id,
                "root": ROOT,
                "ipfs_cid": "bafkreiccp6j4v7m4ygn6n3wahzmqzhdm36pwrcs6v4q7vdlsgupcwfp5au",
                "count": 1,
                "first_ts": "2026-12-03T03:00:00.000Z",
                "last_ts": "2026-12-03T03:00:01.000Z",
                "devices": 1,
            }
            started = time.monotonic()
            try:
                # Not submit_anchor: an "already anchored" answer (a second copy of one
                # submission) must show up as an error here, not be absorbed.
                done = self.contract.submit("AnchorBatch", json.dumps(anchor, sort_keys=True))
            except LedgerError as exc:
                self.errors.append((batch_id, exc))
                time.sleep(0.5)  # a failing network is not to be hammered
                continue
            self.submissions.append(
                Submission(batch_id, done.tx_id, done.block_number, started, time.monotonic())
            )

    def wait_for(self, count: int, timeout: float) -> None:
        """Wait until ``count`` submissions committed in all."""
        deadline = time.monotonic() + timeout
        while len(self.submissions) < count:
            assert time.monotonic() < deadline, (
                f"{len(self.submissions)} of {count} anchors committed in {timeout:g} s; "
                f"{len(self.errors)} errors, the first: {self.errors[:3]}"
            )
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def longest_wait(self, since: float) -> float:
        """The longest time after ``since`` with no commit: the pause a failure caused."""
        ends = [since] + [s.committed for s in self.submissions if s.committed > since]
        return max((b - a for a, b in itertools.pairwise(ends)), default=0.0)
