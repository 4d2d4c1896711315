"""Web bench: the buyer's QR page and the proof API under 50 concurrent clients.

Targets: QR page p95 < 150 ms and proof API p95 < 50 ms at 50 concurrent clients.

Builds the demo scenario (demo.scenario) into a schema of its own, serves it with
`python -m api` (uvicorn) on a loopback port, and loads it with wrk (C, Debian's package) so the
load generator costs little of the machine's CPU. Each run is bounded in time (DURATION_S) and
connections (50). wrk reports p50/p90/p99 by itself; a small Lua `done` hook prints p95 too.
The proof API is loaded across every reading of the lot (a Lua `request` hook cycles through
their proof URLs). Results: bench/results/web.json.

    python -m bench.web_bench [--duration 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from psycopg import sql

from demo.scenario import ScenarioResult, build_scenario
from tests.support.processes import free_port, serve_process
from tracehub import db
from tracehub.config import PROJECT_DIR, Settings

RESULTS = PROJECT_DIR / "bench" / "results" / "web.json"
CONNECTIONS = 50
TARGETS_MS = {"qr_page": 150.0, "proof_api": 50.0}

_DONE_HOOK = """
done = function(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %d %d %d %d %d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), summary.errors.status + summary.errors.connect +
    summary.errors.read + summary.errors.write + summary.errors.timeout, latency.max))
end
"""


def _wrk(url: str, duration: int, script: str, accept: str, threads: int = 2) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script + _DONE_HOOK)
        path = handle.name
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{CONNECTIONS}",
                f"-d{duration}s",
                "--timeout",
                "5s",
                "-H",
                f"Accept: {accept}",
                "-s",
                path,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=duration + 30,
            check=True,
        ).stdout
    finally:
        os.unlink(path)
    match = re.search(r"^BENCH (.*)$", out, re.M)
    if not match:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    requests, duration_us, p50, p90, p95, p99, errors, worst = map(int, match.group(1).split())
    return {
        "requests": requests,
        "seconds": round(duration_us / 1e6, 2),
        "rps": round(requests / (duration_us / 1e6), 1),
        "p50_ms": p50 / 1000,
        "p90_ms": p90 / 1000,
        "p95_ms": p95 / 1000,
        "p99_ms": p99 / 1000,
        "max_ms": worst / 1000,
        "errors": errors,
    }


def _serve(
    schema: str, port: int, workers: int, cache_s: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TRACEHUB_API_SEARCH_PATH": schema,
        "TRACEHUB_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TRACEHUB_PAGE_CACHE_S": cache_s,
    }
    argv = ["-m", "api", "--port", str(port), "--workers", str(workers)]
    return serve_process(argv, env, log, f"http://127.0.0.1:{port}/healthz", append_log=True)


def _proof_script(scenario: ScenarioResult, seqs: int) -> str:
    paths = ", ".join(f'"/proofs/readings/{scenario.logger_id}/{seq}"' for seq in range(1, seqs))
    return (
        f"local paths = {{{paths}}}\nlocal i = 0\n"
        "request = function()\n  i = i % #paths + 1\n"
        "  return wrk.format('GET', paths[i])\nend\n"
    )


def run(duration: int, workers: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("web bench: wrk is missing (scripts/install-system-deps.sh installs it)")
    settings = Settings.from_env()
    schema = f"bench_web_{secrets.token_hex(4)}"
    log = settings.run_dir / "logs" / "web-bench.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with db.connect(settings.postgres_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        started = time.monotonic()
        scenario = build_scenario(settings, schema=schema, log=log)
        print(f"web bench: scenario built in {time.monotonic() - started:.0f} s ({scenario.lot})")
        results: dict[str, Any] = {
            "connections": CONNECTIONS,
            "duration_s": duration,
            "api_workers": workers,
            "cpus": os.cpu_count(),
            "lot_readings": scenario.readings,
            "runs": {},
        }
        # The page as deployed (2 s view cache), and with the cache off: every request
        # queries PostgreSQL and renders the page.
        for label, cache_s in (("cached_2s", "2"), ("uncached", "0")):
            port = free_port()
            server = _serve(schema, port, workers, cache_s, log)
            try:
                base = f"http://127.0.0.1:{port}"
                page = _wrk(base + scenario.path, duration, "", "text/html")
                results["runs"][f"qr_page_{label}"] = page
                print(f"  QR page ({label}): {_line(page)}")
                if label == "cached_2s":
                    proof = _wrk(
                        base + "/", duration, _proof_script(scenario, 48), "application/json"
                    )
                    results["runs"]["proof_api"] = proof
                    print(f"  proof API: {_line(proof)}")
            finally:
                server.terminate()
                server.wait(15)
        runs = results["runs"]
        results["targets"] = {
            "qr_page_p95_ms": TARGETS_MS["qr_page"],
            "proof_api_p95_ms": TARGETS_MS["proof_api"],
            "qr_page_met": runs["qr_page_cached_2s"]["p95_ms"] < TARGETS_MS["qr_page"]
            and runs["qr_page_cached_2s"]["errors"] == 0,
            "proof_api_met": runs["proof_api"]["p95_ms"] < TARGETS_MS["proof_api"]
            and runs["proof_api"]["errors"] == 0,
        }
        return results
    finally:
        with db.connect(settings.postgres_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['requests']} requests, {r['rps']}/s, p50 {r['p50_ms']:.1f} ms, "
        f"p95 {r['p95_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, errors {r['errors']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web_bench", description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    args = parser.parse_args()
    results = run(args.duration, args.workers)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"web bench: targets {results['targets']}; results in {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
