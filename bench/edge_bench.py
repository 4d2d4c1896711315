"""The edge agent's costs: spool throughput and size, and the agent's CPU and memory under load.

    .venv/bin/python -m bench.edge_bench [--spool-readings 200000] [--agent-seconds 20]

1. Spool: appends real signed rfid envelopes (about 560 bytes each), one reading per
   transaction (what the agent does for a lone read event) and 100 per transaction (a burst of
   read events), then acknowledges them as the agent does: settled by the hub's acknowledgement
   (`ack_per_s`: the usual case, the hub answers within a second, so nothing else is written),
   and, for a hub that is slow or down, first marked sent in the batches the broker's PUBACKs
   come in (`--puback-batch`) and then settled (`ack_per_s_hub_late`); reports readings/s and
   the database size per million readings (measured on `--spool-readings`, scaled linearly).
2. Agent at 100 reads/s: runs `tracehub-edge run` against the real broker (the stack must be
   up: `make bench` brings it up) and a gateway (its own group), which acknowledges what it
   stores, with a simulated R2000 reader on a pseudo-terminal reporting 100 tag reads per second
   (tags passing by, each reported 4 times, so the smoother makes 25 signed read events a
   second), and samples the agent's CPU time and resident memory from /proc.
Bounded in count and time; writes bench/results/edge.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs.broker import BrokerEndpoint, admit_gateway
from certs.enrolment import enrol_simulated_devices
from certs.pki import PKI
from edge.rfid_reader import r2000
from edge.spool import Spool
from tracehub.config import PROJECT_DIR, Settings
from tracehub.envelope import sign_reading
from tracehub.reading import Reading

RESULTS = Path(__file__).resolve().parent / "results" / "edge.json"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _signer(pki: PKI, device_id: str) -> tuple[ec.EllipticCurvePrivateKey, Any]:
    pki.enrol_simulated_device(device_id)  # signs in-process only: no gateway sees it
    _, key_path = pki.device_paths(device_id)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key, pki.device(device_id)[0].certificate


def bench_spool(pki: PKI, readings: int, puback_batch: int) -> dict[str, Any]:
    device_id = f"bench-{uuid.uuid4().hex[:8]}"
    key, certificate = _signer(pki, device_id)
    ts = datetime.now(UTC).replace(microsecond=0)

    def build(seq: int, prev: str) -> bytes:
        data = {
            "epc": f"3074257BF7194E4000{seq % 0xFFFFFF:06X}",
            "antenna": 1,
            "rssi_dbm": -61.5,
            "read_count": 4,
            "reader": "dock-door-1",
        }
        reading = Reading(
            device=device_id, seq=seq, ts=ts, kind="rfid", data=data, prev=prev, loc="4006381333931"
        )
        return sign_reading(reading, key, certificate)

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (1, 100):
            path = Path(tmp) / f"spool-{batch}.sqlite3"
            spool = Spool(path, max_readings=2 * readings + 1)
            count = readings if batch == 100 else min(readings, 20_000)
            started = time.perf_counter()
            for _ in range(count // batch):
                spool.append_many([(device_id, build)] * batch)
            append_s = time.perf_counter() - started
            spool.close()
            size = sum(p.stat().st_size for p in Path(tmp).glob(f"spool-{batch}.sqlite3*"))
            spool = Spool(path, max_readings=2 * readings + 1)
            started = time.perf_counter()
            while pending := spool.pending(limit=500):
                spool.settle(device_id, [(pending[0].seq, pending[-1].seq)])
            ack_s = time.perf_counter() - started
            # The same again with a hub that answers late: marked sent first.
            for _ in range(count // 100):
                spool.append_many([(device_id, build)] * 100)
            started = time.perf_counter()
            while pending := spool.pending(limit=500):
                for at in range(0, len(pending), puback_batch):
                    spool.mark_sent(
                        pending[at : at + puback_batch], resend_after_s=30, max_resend_after_s=600
                    )
                spool.settle(device_id, [(pending[0].seq, pending[-1].seq)])
            late_s = time.perf_counter() - started
            spool.close()
            results[f"batch_{batch}"] = {
                "readings": count,
                "append_per_s_incl_signing": round(count / append_s),
                "ack_per_s": round(count / ack_s),
                "ack_per_s_hub_late": round(count / late_s),
                "bytes_per_reading_on_disk": round(size / count),
                "mib_per_million_readings": round(size / count * 1e6 / 2**20),
            }
    return results


def _proc_stats(pid: int) -> tuple[float, int]:
    """CPU seconds used and resident KiB of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    rss_kib = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return cpu, rss_kib


def bench_agent(settings: Settings, pki: PKI, seconds: float) -> dict[str, Any]:
    device_id = f"bench-agent-{uuid.uuid4().hex[:8]}"
    enrol_simulated_devices(pki, settings.fabric, [device_id])  # the gateway needs the ledger's
    time.sleep(1.1)
    master, slave = os.openpty()
    os.set_blocking(master, False)
    name = f"bench-edge-{uuid.uuid4().hex[:6]}"
    admit_gateway(pki, BrokerEndpoint.of(settings), name)  # its own broker identities
    gateway = subprocess.Popen(
        [
            str(PROJECT_DIR / ".venv/bin/python"),
            "-m",
            "gateway",
            "--name",
            name,
            "--group",
            name,
            "--log-level",
            "WARNING",
        ],
        cwd=PROJECT_DIR,
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "agent.toml"
        config.write_text(
            f'[device]\nid = "{device_id}"\n'
            f'certificate = "{settings.pki_dir}/devices/{device_id}/cert.pem"\n'
            f'key = "{settings.pki_dir}/devices/{device_id}/key.pem"\n'
            f'[broker]\nhost = "{settings.mqtt_host}"\nport = {settings.mqtt_tls_port}\n'
            f'ca = "{settings.pki_dir}/ca-bundle.pem"\n'
            f'[spool]\npath = "{tmp}/spool.sqlite3"\n'
            f'[[readers]]\nname = "r"\nprotocol = "r2000"\nport = "{os.ttyname(slave)}"\n'
            f"smoothing_window_s = 0.5\n"
        )
        agent = subprocess.Popen(
            [
                str(PROJECT_DIR / ".venv/bin/python"),
                "-m",
                "edge.cli",
                "run",
                "--config",
                str(config),
                "--log-level",
                "WARNING",
            ],
            cwd=PROJECT_DIR,
        )
        try:
            time.sleep(2.0)  # start-up is not what we measure
            cpu0, _ = _proc_stats(agent.pid)
            started = time.monotonic()

            def frame(n: int) -> bytes:
                epc = bytes.fromhex(f"3074257BF7194E4000{n:06X}")
                return r2000.encode_command(0x89, bytes([1, 0x30, 0x00]) + epc + b"\x50", 0x01)

            sent, rss_peak = 0, 0
            while (elapsed := time.monotonic() - started) < seconds:
                due = int(elapsed * 100)
                while sent < due:
                    # Tags pass the antenna: each is reported 4 times, then never again.
                    os.write(master, frame(sent // 4))
                    sent += 1
                with contextlib.suppress(BlockingIOError):
                    os.read(master, 4096)  # the agent's inventory commands
                rss_peak = max(rss_peak, _proc_stats(agent.pid)[1])
                time.sleep(0.01)
            cpu1, rss = _proc_stats(agent.pid)
            wall = time.monotonic() - started
            status = json.loads((Path(tmp) / "status.json").read_text())
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(20)
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(60)
            os.close(master)
            os.close(slave)
            leave = [str(PROJECT_DIR / ".venv/bin/python"), "-m", "gateway", "--name", name]
            subprocess.run([*leave, "--leave"], cwd=PROJECT_DIR, check=False, timeout=60)
    return {
        "tag_reads_sent": sent,
        "reads_per_s": round(sent / wall, 1),
        "read_events_spooled": status["readers"]["r"]["read_events"],
        "acknowledged_by_broker": status["publisher"]["acknowledged"],
        "acknowledged_by_hub": status["hub_acks"]["settled"],
        "hub_acknowledgements": status["hub_acks"]["hub_acks"],
        "cpu_percent_of_one_core": round((cpu1 - cpu0) / wall * 100, 1),
        "rss_mib": round(rss / 1024, 1),
        "rss_peak_mib": round(rss_peak / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spool-readings", type=int, default=200_000)
    parser.add_argument("--agent-seconds", type=float, default=20.0)
    parser.add_argument(
        "--puback-batch",
        type=int,
        default=64,
        help="readings marked sent per transaction (the publisher's in-flight window)",
    )
    args = parser.parse_args()
    settings = Settings.from_env()
    pki = PKI(settings.pki_dir)
    print(f"edge bench: spool with {args.spool_readings} readings ...", flush=True)
    spool = bench_spool(pki, args.spool_readings, args.puback_batch)
    for name, row in spool.items():
        print(f"  spool {name}: {row}")
    print(f"edge bench: agent at 100 reads/s for {args.agent_seconds:.0f} s ...", flush=True)
    agent = bench_agent(settings, pki, args.agent_seconds)
    print(f"  agent: {agent}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "spool": spool,
                "agent_100_reads_per_s": agent,
                "measured_at": datetime.now(UTC).isoformat(),
            },
            indent=2,
        )
    )
    print(f"edge bench: results in {RESULTS}")


if __name__ == "__main__":
    main()
