"""Orders placed per second through the API (POST /commerce/orders), with latency percentiles.

    .venv/bin/python -m bench.orders_bench [--workers 2] [--connections 16] [--seconds 20]
                                           [--runs 3] [--processes 1] [--keep]

Serves the real API with uvicorn on loopback (``python -m api --workers N``) against the stack's
PostgreSQL, in a fresh schema ``bench_<random>`` (migrated, seeded with a buyer, a supplier,
products and a price list). A load generator in separate processes keeps ``--connections``
HTTP/1.1 keep-alive connections busy (closed loop: each sends its next order when the previous
one is answered), every order with its own Idempotency-Key and a bearer token, for
``--seconds`` after a warm-up, ``--runs`` times. Reports orders/s and p50/p90/p99/max
latency; checks that the database holds exactly one order per 201 answer; reports the CPU
seconds spent by the API workers, PostgreSQL and the load generator (where the time goes).
Writes bench/results/orders.json.

The load generator writes requests and reads responses on raw asyncio streams: a full HTTP
client library costs several times more CPU per request on this 2-core machine, CPU the server
under test would not get (docs/decisions/0009-commerce.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from psycopg import sql

from api.auth import Principal, create_user, issue_token
from api.config import load_token_key
from bench._proc import cpu_seconds
from ingest.schema import migrate
from tests.support.processes import free_port
from tracehub import db
from tracehub.config import PROJECT_DIR, Settings

RESULTS = Path(__file__).resolve().parent / "results" / "orders.json"
GTINS = ["09506000134352", "09506000134369", "09506000134376"]


def _postgres_pid(settings: Settings) -> int:
    return int((settings.run_dir / "pids" / "postgres.pid").read_text().strip())


def _prepare(settings: Settings) -> tuple[str, str]:
    """A migrated, seeded schema; returns (schema, bearer token of its buyer)."""
    schema = f"bench_{secrets.token_hex(5)}"
    with db.connect(settings.postgres_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    with db.connect(settings.postgres_dsn, options=f"-c search_path={schema}") as conn:
        migrate(conn)
        conn.execute(
            "INSERT INTO organisations (org_id, name, kind) VALUES"
            " ('bench-supplier', 'Bench Supplier', 'supplier'),"
            " ('bench-buyer', 'Bench Buyer', 'buyer')"
        )
        for i, gtin in enumerate(GTINS):
            conn.execute(
                "INSERT INTO products (gtin, name) VALUES (%s, %s)", (gtin, f"product {i}")
            )
            conn.execute(
                "INSERT INTO price_lists (supplier_org, gtin, currency, unit_price_minor)"
                " VALUES ('bench-supplier', %s, 'USD', %s)",
                (gtin, 1000 + 250 * i),
            )
        conn.commit()
        user_id = create_user(
            conn, "bench-buyer", secrets.token_urlsafe(16), ["buyer"], org_id="bench-buyer"
        )
    key = load_token_key(settings.run_dir / "api" / "token.key")
    principal = Principal(user_id, "bench-buyer", frozenset({"buyer"}), "bench-buyer")
    return schema, issue_token(key, principal, 3600)


def _drop(settings: Settings, schema: str) -> None:
    with db.connect(settings.postgres_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# -- load generator (runs in its own process) ---------------------------------------------


def _request(port: int, token: str, key: str, i: int) -> bytes:
    body = json.dumps(
        {
            "supplier_org": "bench-supplier",
            "currency": "USD",
            "incoterm": "FOB",
            "named_place": "Rotterdam",
            "lines": [
                {"gtin": GTINS[i % 3], "quantity": 1 + i % 7},
                {"gtin": GTINS[(i + 1) % 3], "quantity": 2},
            ],
        }
    ).encode()
    head = (
        f"POST /commerce/orders HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _connection(
    port: int, token: str, prefix: str, warm_until: float, stop_at: float, out: dict[str, Any]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                break
            i += 1
            writer.write(_request(port, token, f"{prefix}-{i}", i))
            await writer.drain()
            status = await _read_response(reader)
            done = time.perf_counter()
            if now >= warm_until:
                out["latencies"].append(done - now)
                out["statuses"][status] = out["statuses"].get(status, 0) + 1
            else:
                out["warmup_statuses"][status] = out["warmup_statuses"].get(status, 0) + 1
    finally:
        writer.close()


async def _load(
    port: int, token: str, connections: int, warmup: float, seconds: float
) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "statuses": {}, "warmup_statuses": {}}
    start = time.perf_counter()
    warm_until, stop_at = start + warmup, start + warmup + seconds
    run = secrets.token_hex(4)
    await asyncio.gather(
        *(
            _connection(port, token, f"{run}-{c}", warm_until, stop_at, out)
            for c in range(connections)
        )
    )
    return out


def loadgen_main(args: argparse.Namespace) -> None:
    out = asyncio.run(_load(args.port, args.token, args.connections, args.warmup, args.seconds))
    json.dump(out, sys.stdout)


# -- driver -------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.from_env()
    schema, token = _prepare(settings)
    port = free_port()
    env = {**os.environ, "TRACEHUB_API_SEARCH_PATH": schema}
    python = str(PROJECT_DIR / ".venv" / "bin" / "python")
    server = subprocess.Popen(
        [python, "-m", "api", "--port", str(port), "--workers", str(args.workers)],
        cwd=PROJECT_DIR,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    if b"200 OK" in sock.recv(200):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("API server did not come up")
            time.sleep(0.2)
        per_process = max(1, args.connections // args.processes)
        pg = _postgres_pid(settings)
        cpu_before = (cpu_seconds(server.pid), cpu_seconds(pg))
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        loadgen_cpu_before = usage.ru_utime + usage.ru_stime
        wall = time.perf_counter()
        gens = [
            subprocess.Popen(
                [
                    python,
                    "-m",
                    "bench.orders_bench",
                    "--loadgen",
                    "--port",
                    str(port),
                    "--token",
                    token,
                    "--connections",
                    str(per_process),
                    "--warmup",
                    str(args.warmup),
                    "--seconds",
                    str(args.seconds),
                ],
                cwd=PROJECT_DIR,
                stdout=subprocess.PIPE,
            )
            for _ in range(args.processes)
        ]
        outputs = [
            json.loads(g.communicate(timeout=args.seconds + args.warmup + 120)[0]) for g in gens
        ]
        wall = time.perf_counter() - wall
        cpu_after = (cpu_seconds(server.pid), cpu_seconds(pg))
        # The load generators are the only children reaped so far (the server still runs).
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        loadgen_cpu = usage.ru_utime + usage.ru_stime - loadgen_cpu_before
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    latencies = [x for o in outputs for x in o["latencies"]]
    statuses: dict[str, int] = {}
    for o in outputs:
        for k, v in o["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    warm_created = sum(o["warmup_statuses"].get("201", 0) for o in outputs)
    with db.connect(settings.postgres_dsn, options=f"-c search_path={schema}") as conn:
        stored = conn.execute("SELECT count(*) FROM orders").fetchone()
    if not args.keep:
        _drop(settings, schema)
    created = statuses.get("201", 0)
    result = {
        "bench": "orders",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "setup": {
            "api_workers": args.workers,
            "connections": args.connections,
            "loadgen_processes": args.processes,
            "warmup_s": args.warmup,
            "measured_s": args.seconds,
            "lines_per_order": 2,
        },
        "orders_per_s": round(created / args.seconds, 1),
        "statuses": statuses,
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 2),
            "p90": round(_percentile(latencies, 0.90) * 1000, 2),
            "p99": round(_percentile(latencies, 0.99) * 1000, 2),
            "max": round(max(latencies) * 1000, 2),
        },
        "orders_in_db": int(stored[0]) if stored else 0,
        "orders_expected_in_db": created + warm_created,
        "cpu_seconds": {
            "api_workers": round(cpu_after[0] - cpu_before[0], 1),
            "postgres": round(cpu_after[1] - cpu_before[1], 1),
            "load_generator": round(loadgen_cpu, 1),
            "wall": round(wall, 1),
            "available": round(wall * (os.cpu_count() or 1), 1),
        },
        "target": {"orders_per_s": 1000, "p99_ms": 300},
    }
    result["meets_target"] = result["orders_per_s"] >= 1000 and result["latency_ms"]["p99"] < 300
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.orders_bench", description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main(args)
        return
    runs = []
    for n in range(args.runs):
        runs.append(run(args))
        r = runs[-1]
        print(
            f"run {n + 1}/{args.runs}: {r['orders_per_s']} orders/s, p99"
            f" {r['latency_ms']['p99']} ms, cpu {r['cpu_seconds']}",
            file=sys.stderr,
        )
    rates = sorted(r["orders_per_s"] for r in runs)
    # The machine is shared (other processes take CPU at random), so every run is kept, and
    # the median and the best are both reported.
    summary = {
        "runs": runs,
        "median_orders_per_s": rates[len(rates) // 2],
        "best": max(runs, key=lambda r: r["orders_per_s"]),
        "any_run_meets_target": any(r["meets_target"] for r in runs),
        "load_average_1m_at_end": os.getloadavg()[0],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
