"""Where a gateway process's time goes, per reading: py-spy samples of every thread, by component.

py-spy (a sampling profiler, `pip install py-spy`; measuring only, not a project dependency)
reads a running process's stacks from outside, all threads at once, where cProfile sees only the
thread it runs in. Threads py-spy sees blocked are left out, but one waiting for the GIL or in
some C waits still counts: a figure is time spent in a component (not CPU), good for
proportions and for one component before and after. Each sample is charged to its thread (by
the name the gateway gives it) and, inside it, to the first component whose frame it contains;
samples / rate / readings gives µs per reading.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from tracehub.config import PROJECT_DIR

PY_SPY = PROJECT_DIR / ".venv" / "bin" / "py-spy"

# The thread, by the name the gateway gives it (py-spy's `thread (tid): name` root frame).
THREADS = (
    ("ingest", "): ingest;"),
    ("store", "): store;"),
    ("batch", "): batch;"),
    ("anchor", "): anchor;"),
    ("acks", "): acks;"),
    ("registry", "): registry;"),
    ("mqtt loop", "): paho-mqtt-client"),
)
# Inside a thread, the first component whose marker is in the stack (most specific first).
COMPONENTS = (
    ("VerifiedRow validation", ("__post_init__ (ingest/store.py",)),
    ("signature: joserfc + cryptography", ("joserfc/", "cryptography/")),
    ("envelope + reading parse", ("tracehub/envelope.py", "tracehub/reading.py", "pydantic")),
    ("certificate, CRL, registry", ("tracehub/verify.py", "certs/")),
    ("checks, other", ("gateway/checks.py", "from_verified")),
    ("drain (queue)", ("drain (gateway/consumer.py",)),
    ("PUBACK queueing (paho ack)", ("ack (gateway/consumer.py",)),
    ("store_verified", ("store_verified",)),
    ("quarantine", ("quarantine",)),
    ("read + parse PUBLISH", ("loop_read", "_packet_read")),
    ("write packets", ("loop_write", "_packet_write")),
    ("on_message", ("_on_message",)),
    ("psycopg", ("psycopg/",)),
    ("paho, other", ("paho/",)),
)


class Recording:
    """py-spy recording each of `pids` (all threads, raw stacks) until `stop`."""

    def __init__(self, pids: list[int], rate: int) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="py-spy-")
        self._outputs = [Path(self._dir.name) / f"{pid}.txt" for pid in pids]
        self._spies = [
            subprocess.Popen(
                [
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    str(rate),
                    "--format",
                    "raw",
                    "--threads",
                    "--nonblocking",
                    "--output",
                    str(output),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid, output in zip(pids, self._outputs, strict=True)
        ]
        time.sleep(1)  # attached

    def stop(self) -> Counter[str]:
        """End the recordings; the samples of all processes, by collapsed stack."""
        for spy in self._spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for spy in self._spies:
            spy.wait(60)
        samples: Counter[str] = Counter()
        for output in self._outputs:
            if output.exists():
                for line in output.read_text().splitlines():
                    stack, _, count = line.rpartition(" ")
                    if stack and count.isdigit():
                        samples[stack] += int(count)
        self._dir.cleanup()
        return samples


def component(stack: str) -> str:
    """`thread: component` of one collapsed stack (frames root first, `;`-separated)."""
    thread = next((name for name, marker in THREADS if marker in stack), "other thread")
    part = next((name for name, markers in COMPONENTS if any(m in stack for m in markers)), "other")
    return f"{thread}: {part}"


def summarise(samples: Counter[str], rate: int, readings: int) -> dict[str, float]:
    """µs per reading for each `thread: component`, largest first, with the total."""
    by_component: Counter[str] = Counter()
    for stack, count in samples.items():
        by_component[component(stack)] += count
    per_reading = {
        name: round(count / rate / readings * 1e6, 1) for name, count in by_component.most_common()
    }
    per_reading["total"] = round(sum(by_component.values()) / rate / readings * 1e6, 1)
    return per_reading
