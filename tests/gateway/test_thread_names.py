"""The gateway's loops are named for the OS too: top -H shows them, and bench.ingest_bench
charges each thread's CPU (from /proc) to its name."""

from __future__ import annotations

import threading
from pathlib import Path

from gateway.service import _titled


def test_a_titled_loop_runs_in_a_thread_the_os_knows_by_its_name() -> None:
    seen: list[str] = []

    def loop() -> None:
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text())

    thread = threading.Thread(target=_titled("ingest", loop))
    thread.start()
    thread.join(5)
    assert seen == ["ingest\n"]
