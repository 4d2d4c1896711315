"""Telegraf, the user's obvious alternative, storing the same MQTT messages without checking them.

One Telegraf process (`mqtt_consumer` input, `postgresql` output) stores each payload as a string
in a table of the schema `bench_telegraf`, without verifying or anchoring anything, while the
caller publishes. Telegraf is a broker identity of its own, with the gateways' read rights
(certs.broker), and a PostgreSQL role of its own, `tracehub_bench_telegraf`, which owns the bench
schema and nothing else (created here by the schema's owner with a fresh password each run). The
binary is `.bin/telegraf`, built by network/build-telegraf.sh. Used by bench.ingest_bench (part
t, in the same run as the pipeline) and bench.telegraf_bench.
"""

from __future__ import annotations

import resource
import secrets
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench._proc import children_cpu_since, cpu_and_rss, own_cpu_seconds
from certs.broker import BrokerEndpoint, admit_gateway
from certs.pki import PKI
from tests.support.mqtt import end_session
from tracehub import db
from tracehub.config import PROJECT_DIR, Settings
from tracehub.pki_names import service_username

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
    settings: Settings, total: int, publish: Callable[[], list[float]], log_path: Path
) -> dict[str, Any]:
    """One Telegraf process subscribed to every device topic while ``publish`` publishes
    ``total`` messages (returning their publish times); stored/s and CPU per message."""
    run_id = uuid.uuid4().hex[:8]
    table = f"readings_{run_id}"
    password = _prepare_database(settings, table)
    pki = PKI(settings.pki_dir)
    # One identity for every run: a run killed before its clean-up left a session that never
    # expires (MQTT 3.1.1), which this run ends before it starts.
    service = admit_gateway(pki, BrokerEndpoint.of(settings), "telegraf")[0]
    end_session(settings, service)
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
        log = log_path.open("ab")
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
            publishing0 = time.thread_time()
            publish_times = publish()
            # The publisher's own processes and, in this thread, its work or its pipe writes.
            publishers_cpu = children_cpu_since(children0) + time.thread_time() - publishing0
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
            end_session(settings, service)
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
