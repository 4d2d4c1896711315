"""TraceHub's gateways and Telegraf side by side, on the same signed messages, in one run.

    .venv/bin/python -m bench.telegraf_bench [--devices 8] [--readings 1000] [--gateways 2]
                                             [--profile] [--no-telegraf]

The readings are signed once. They are published flat out by the same publisher
(bench.ingest_bench: one MQTT client per device, QoS 1, two processes), first to `--gateways`
TraceHub gateways (checks, PostgreSQL, IPFS, Fabric: run (c1) of bench.ingest_bench), then, the
same envelopes again, to one Telegraf process (`mqtt_consumer` input, `postgresql` output), which
stores each payload as a string in a table of the schema `bench_telegraf` without checking or
anchoring anything. For each: messages/s from the first publish until all are in PostgreSQL, and
process CPU (from /proc) per message of the consumer, the broker and PostgreSQL.

Telegraf is a broker identity of its own, with the gateways' read rights (certs.broker), and
a PostgreSQL role of its own, `tracehub_bench_telegraf`, which owns the bench schema and nothing
else (created here by the schema's owner with a fresh password each run). The binary is
`.bin/telegraf`, built by network/build-telegraf.sh.

`--profile` samples every gateway process with py-spy (all threads) during the gateway run
and charges the samples to the gateway's components, in µs of CPU per reading
(bench/gateway_profile.py). Writes bench/results/telegraf.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench import gateway_profile
from bench._proc import cpu_and_rss, own_cpu_seconds
from bench.ingest_bench import PUBLISHERS, _cpu_since, _publish, _sign_all, bench_gateway
from certs.broker import BrokerEndpoint, admit_gateway
from certs.pki import PKI
from gateway.consumer import ConsumerSettings, leave
from tracehub import db
from tracehub.config import PROJECT_DIR, Settings
from tracehub.pki_names import service_username

RESULTS = Path(__file__).resolve().parent / "results" / "telegraf.json"
TELEGRAF = PROJECT_DIR / ".bin" / "telegraf"
ROLE = "tracehub_bench_telegraf"
SCHEMA = "bench_telegraf"


def _prepare_database(settings: Settings, table: str) -> str:
    """The bench role (fresh password) and its schema; returns the password."""
    password = secrets.token_urlsafe(24)
    with db.connect(settings.postgres_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                sql.Identifier(SCHEMA), sql.Identifier(ROLE)
            )
        )
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCHEMA, table)))
    return password


def _config(settings: Settings, client_id: str, cert: Path, key: Path, table: str, pw: str) -> str:
    dsn = psycopg.conninfo.conninfo_to_dict(settings.postgres_dsn)
    connection = (
        f"host={dsn.get('host', '127.0.0.1')} port={dsn.get('port', 5432)} "
        f"dbname={dsn.get('dbname', 'tracehub')} user={ROLE} password={pw} sslmode=disable"
    )
    pki = PKI(settings.pki_dir)
    # Flushes as soon as a batch of 1,000 is full, else every 100 ms. With a persistent session
    # (and only then) Telegraf acknowledges an MQTT message once the output has written it
    # (delivery tracking), up to 2,000 at a time: the gateway's "ack after the durable write".
    return f"""
[agent]
  interval = "1s"
  flush_interval = "100ms"
  flush_jitter = "0s"
  metric_batch_size = 1000
  metric_buffer_limit = 100000
  omit_hostname = true

[[inputs.mqtt_consumer]]
  servers = ["ssl://{settings.mqtt_host}:{settings.mqtt_tls_port}"]
  topics = ["tracehub/v1/devices/+/readings"]
  qos = 1
  client_id = "{client_id}"
  persistent_session = true
  max_undelivered_messages = 2000
  name_override = "{table}"
  data_format = "value"
  data_type = "string"
  tls_ca = "{pki.ca_bundle_path}"
  tls_cert = "{cert}"
  tls_key = "{key}"

[[outputs.postgresql]]
  connection = "{connection}"
  schema = "{SCHEMA}"
"""


def bench_telegraf(
    settings: Settings, signed: dict[str, list[bytes]], publisher: str = "c"
) -> dict[str, Any]:
    """One Telegraf process subscribed to every device topic; the same envelopes published."""
    total = sum(len(v) for v in signed.values())
    run_id = uuid.uuid4().hex[:8]
    table = f"readings_{run_id}"
    password = _prepare_database(settings, table)
    pki = PKI(settings.pki_dir)
    service = admit_gateway(pki, BrokerEndpoint.of(settings), f"telegraf-{run_id}")[0]
    cert, key, _ = pki.service_paths(service)
    pids = settings.run_dir / "pids"
    components = {n: int((pids / f"{n}.pid").read_text()) for n in ("mosquitto", "postgres")}
    stored_at: list[tuple[float, int]] = []
    stop = threading.Event()
    count = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, table))

    poll_cpu: list[float] = []
    polled, measured = threading.Event(), threading.Event()

    def poll() -> None:
        with db.connect(settings.postgres_dsn, autocommit=True) as conn:
            try:
                poll_until_stored(conn)
            finally:  # the bench's counting, taken out of PostgreSQL's figure (as for TraceHub)
                poll_cpu.append(own_cpu_seconds(conn.info.backend_pid))
                polled.set()
                measured.wait(30)  # connected until the CPU is read (see bench.ingest_bench)

    def poll_until_stored(conn: Any) -> None:
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                row = conn.execute(count).fetchone()
                stored = int(row[0]) if row else 0
            except psycopg.errors.UndefinedTable:
                stored = 0  # Telegraf creates its table with the first write
            stored_at.append((time.monotonic(), stored))
            if stored >= total:
                return
            time.sleep(0.1)

    with tempfile.TemporaryDirectory(prefix="telegraf-") as home:
        conf = Path(home) / "telegraf.conf"
        conf.write_text(_config(settings, service_username(service), cert, key, table, password))
        conf.chmod(0o600)
        log = (RESULTS.parent / "telegraf.log").open("ab")
        process = subprocess.Popen(
            [str(TELEGRAF), "--config", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"HOME": home},
        )
        components["telegraf"] = process.pid
        try:
            time.sleep(3)  # connected and subscribed
            if process.poll() is not None:
                raise RuntimeError(f"telegraf exited ({process.returncode}): see {log.name}")
            cpu0 = {name: cpu_and_rss(pid)[0] for name, pid in components.items()}
            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            publish_times = _publish(settings, signed, publisher=publisher)
            publishers_cpu = _cpu_since(children0)
            polled.wait(150)
            stop.set()
            usage = {name: cpu_and_rss(pid) for name, pid in components.items()}
            measured.set()
            poller.join(30)
            if poll_cpu:
                usage["postgres"] = (usage["postgres"][0] - poll_cpu[0], usage["postgres"][1])
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
            log.close()
            # End the persistent session, or the broker would queue every reading for it.
            leave(
                ConsumerSettings(
                    settings.mqtt_host,
                    settings.mqtt_tls_port,
                    pki.ca_bundle_path,
                    cert,
                    key,
                    service_username(service),
                )
            )
    stored = stored_at[-1][1] if stored_at else 0
    all_stored = next((t for t, n in stored_at if n >= total), None)
    with db.connect(settings.postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCHEMA, table)))
    first = publish_times[0]
    return {
        "messages": total,
        "stored": stored,
        "published_per_s": round(total / (publish_times[-1] - first)),
        "stored_per_s": round(total / (all_stored - first)) if all_stored else None,
        "cpu_us_per_message": {n: round((usage[n][0] - cpu0[n]) / total * 1e6) for n in usage},
        "bench_poll_us_per_message": round(poll_cpu[0] / total * 1e6) if poll_cpu else None,
        "publishers_us_per_message": round(publishers_cpu / total * 1e6),
        "rss_mib": {n: round(usage[n][1], 1) for n in usage},
    }


def _profiler(rate: int, out: dict[str, Any]) -> Callable[[list[int]], Callable[[], None]]:
    """A `watch` for bench_gateway: py-spy on every gateway until the run ends."""

    def watch(pids: list[int]) -> Callable[[], None]:
        recording = gateway_profile.Recording(pids, rate)

        def done() -> None:
            out["samples"] = recording.stop()

        return done

    return watch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--readings", type=int, default=1000)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="py-spy on the gateways")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--no-telegraf", action="store_true", help="the gateways only")
    parser.add_argument(
        "--publisher", choices=PUBLISHERS, default="c", help="see bench.ingest_bench"
    )
    args = parser.parse_args()
    settings = Settings.from_env()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if not args.no_telegraf and not TELEGRAF.exists():
        raise SystemExit(f"{TELEGRAF} missing: run network/build-telegraf.sh")
    print("telegraf bench: signing readings ...", flush=True)
    signed = _sign_all(settings, args.devices, args.readings)
    total = args.devices * args.readings
    results: dict[str, Any] = {"devices": args.devices, "readings_per_device": args.readings}
    profile: dict[str, Any] = {}
    watch = _profiler(args.rate, profile) if args.profile else None
    print(f"telegraf bench: {args.gateways} TraceHub gateway(s), flat out ...", flush=True)
    results["tracehub"] = bench_gateway(
        settings, signed, gateways=args.gateways, watch=watch, publisher=args.publisher
    )
    print(f"  {json.dumps(results['tracehub'])}", flush=True)
    if profile:
        results["gateway_profile"] = gateway_profile.summarise(profile["samples"], args.rate, total)
        print(f"  profile: {json.dumps(results['gateway_profile'])}", flush=True)
    if not args.no_telegraf:
        print("telegraf bench: Telegraf, the same messages, flat out ...", flush=True)
        results["telegraf"] = bench_telegraf(settings, signed, args.publisher)
        print(f"  {json.dumps(results['telegraf'])}", flush=True)
        ours, theirs = results["tracehub"]["stored_per_s"], results["telegraf"]["stored_per_s"]
        if ours and theirs:
            results["tracehub_vs_telegraf"] = round(ours / theirs, 3)
    results["measured_at"] = datetime.now(UTC).isoformat()
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"telegraf bench: results in {RESULTS}")


if __name__ == "__main__":
    main()
