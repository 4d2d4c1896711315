"""A PostgreSQL primary and hot standby of a test's own: network/postgres/postgres.sh and
standby.sh with TRACEHUB_TOPOLOGY=ha, in a temporary run dir on free loopback ports (never the
stack's 15432), killed and failed over with the scripts an operator uses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg

from tests.support.processes import free_port, wait_until
from tracehub import db
from tracehub.config import PROJECT_DIR, Settings

SCRIPTS = PROJECT_DIR / "network" / "postgres"
#: the pair's nodes (directories of the run dir) and the scripts that run them
NODES = {"postgres": "postgres.sh", "postgres-standby": "standby.sh"}


class PostgresPair:
    """The two servers; ``port[node]``, ``settings`` as the hub's processes would see them."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.port = {"postgres": free_port(), "postgres-standby": free_port()}
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        primary, standby = self.port["postgres"], self.port["postgres-standby"]
        self.settings = Settings.from_env(
            {
                "TRACEHUB_RUN": str(run_dir),
                "TRACEHUB_POSTGRES_DSN": f"postgresql://tracehub@127.0.0.1:{primary}/tracehub",
                "TRACEHUB_POSTGRES_STANDBYS": f"127.0.0.1:{standby}",
            }
        )

    def env(self, node: str, *, follows: str = "postgres") -> dict[str, str]:
        """The environment of ``node``'s script (a standby follows the primary ``follows``)."""
        return {
            **os.environ,
            "TRACEHUB_RUN": str(self.run_dir),
            "TRACEHUB_TOPOLOGY": "ha",
            "TRACEHUB_POSTGRES_NODE": node,
            "PGPORT": str(self.port[node]),
            "TRACEHUB_POSTGRES_PRIMARY_PORT": str(self.port[follows]),
        }

    def start(self, node: str, script: str | None = None, *, follows: str = "postgres") -> None:
        """Run ``node`` (by its own script unless ``script``) until it accepts connections."""
        log = (self.run_dir / f"{node}.log").open("ab")
        process = subprocess.Popen(
            [str(SCRIPTS / (script or NODES[node]))],
            env=self.env(node, follows=follows),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as one node
        )
        self._running[node] = process

        def ready() -> bool:
            if process.poll() is not None:
                tail = (self.run_dir / f"{node}.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"{node} exited ({process.returncode}):\n{tail}")
            return self.accepts(node)

        wait_until(ready, 120, f"{node} accepting connections")

    def accepts(self, node: str) -> bool:
        try:
            with self.connect(node, dbname="postgres"):
                return True
        except psycopg.OperationalError:
            return False

    def connect(self, node: str, dbname: str = "tracehub", **kwargs: object) -> db.Connection:
        """The schema owner's connection to one server (not the multi-host string)."""
        return db.connect(
            f"host=127.0.0.1 port={self.port[node]} user=tracehub dbname={dbname} "
            f"passfile={self.settings.postgres_passfile} connect_timeout=5",
            **kwargs,
        )

    def kill(self, node: str, sig: int = signal.SIGKILL) -> None:
        """Signal ``node``'s whole process group (SIGKILL: the server is lost) and reap it."""
        process = self._running.pop(node)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(60)

    def script(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``network/postgres/ARGS[0] ARGS[1:]`` on this pair's run dir."""
        return subprocess.run(
            [str(SCRIPTS / args[0]), *args[1:]],
            env=self.env("postgres"),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def sync_standby(self, primary: str = "postgres") -> str | None:
        """The application name of the standby ``primary`` waits for, if one streams."""
        with self.connect(primary, dbname="postgres", autocommit=True) as conn:
            row = conn.execute(
                "SELECT application_name FROM pg_stat_replication"
                " WHERE state = 'streaming' AND sync_state = 'sync'"
            ).fetchone()
        return None if row is None else str(row[0])

    def stop(self) -> None:
        for node in list(self._running):
            self.kill(node)


@contextmanager
def postgres_pair() -> Iterator[PostgresPair]:
    """A primary streaming synchronously to its standby, with an empty `tracehub` database."""
    # Traversable by the `postgres` user the scripts run the servers as (when run as root).
    run_dir = Path(tempfile.mkdtemp(prefix="tracehub-pg-ha-"))
    run_dir.chmod(0o755)
    pair = PostgresPair(run_dir)
    try:
        pair.start("postgres")
        pair.start("postgres-standby")
        wait_until(lambda: pair.sync_standby() is not None, 60, "the standby streaming, sync")
        with pair.connect("postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE tracehub")
        yield pair
    finally:
        pair.stop()
        time.sleep(0.2)
        shutil.rmtree(run_dir, ignore_errors=True)
