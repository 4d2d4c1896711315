"""Two private Kubo nodes of a test's own (network/kubo/kubo.sh in the `ha` topology), in a run
dir of their own and on free ports, never the stack's: started, killed (SIGKILL) and restarted."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import wait_until
from tracehub.config import PROJECT_DIR
from tracehub.ipfs import IPFSError, KuboClient

KUBO_SH = PROJECT_DIR / "network" / "kubo" / "kubo.sh"


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_pair_base(taken: set[int]) -> int:
    """A port P with P and P+1 free and not in `taken` (kubo.sh puts node 2 one port above
    node 1); both are added to `taken`."""
    for _ in range(200):
        port = random.randrange(20000, 29000)
        if not {port, port + 1} & taken and _free(port) and _free(port + 1):
            taken.update((port, port + 1))
            return port
    raise AssertionError("no two adjacent free ports on loopback")


@dataclass
class KuboPair:
    """Nodes 1 and 2 of a private swarm; `urls[n-1]` is node n's RPC URL."""

    run_dir: Path
    ports: dict[str, int]
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def urls(self) -> tuple[str, str]:
        api = self.ports["KUBO_API_PORT"]
        return (f"http://127.0.0.1:{api}", f"http://127.0.0.1:{api + 1}")

    def client(self, node: int, timeout: float = 10.0) -> KuboClient:
        return KuboClient(self.urls[node - 1], timeout=timeout)

    def healthy(self, node: int) -> bool:
        with self.client(node, timeout=2) as kubo:
            try:
                kubo.version()
            except IPFSError:
                return False
        return True

    def start(self, node: int) -> None:
        env = {
            **os.environ,
            "TRACEHUB_RUN": str(self.run_dir),
            "TRACEHUB_TOPOLOGY": "ha",
            **{name: str(port) for name, port in self.ports.items()},
        }
        log = (self.run_dir / f"kubo{node}.log").open("ab")
        self.processes[node] = subprocess.Popen(
            ["bash", str(KUBO_SH), str(node)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )
        wait_until(lambda: self.healthy(node), 60, f"Kubo node {node} to serve")

    def kill(self, node: int) -> None:
        """SIGKILL: a crash, not a clean stop."""
        process = self.processes.pop(node)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def peered(self) -> bool:
        """Whether node 2 has a swarm connection to node 1."""
        with self.client(1) as one, self.client(2) as two:
            node1 = one._call("id").json()["ID"]
            peers = two._call("swarm/peers").json().get("Peers") or []
        return any(p["Peer"] == node1 for p in peers)


@contextmanager
def kubo_pair(run_dir: Path) -> Iterator[KuboPair]:
    """Both nodes started; every node still running is killed at the end."""
    run_dir.mkdir(parents=True, exist_ok=True)
    taken: set[int] = set()
    api, gateway, swarm = (_port_pair_base(taken) for _ in range(3))
    pair = KuboPair(
        run_dir,
        {"KUBO_API_PORT": api, "KUBO_GATEWAY_PORT": gateway, "KUBO_SWARM_PORT": swarm},
    )
    try:
        pair.start(1)
        pair.start(2)
        yield pair
    finally:
        for node in list(pair.processes):
            pair.kill(node)
