"""Web bench, A/B: this checkout against a baseline checkout, measured in one run.

A shared, noisy machine makes two web benchmarks run minutes apart incomparable (the same
commit's p95 moves by 2-3x between runs). This one builds the demo scenario with each
checkout's own code into a schema of its own, serves both at once (`python -m api` from each
checkout), and loads them in alternating short rounds (A B, B A, A B, ...) with the web bench's
wrk runs, so whatever else the machine does falls on both sides alike. It reports each side's
median over the rounds of p95 and requests/s, and their ratio (this checkout / baseline).

    git worktree add /tmp/baseline <commit> && ln -s "$PWD/.venv" /tmp/baseline/.venv
    python -m bench.web_compare --baseline /tmp/baseline [--rounds 6] [--duration 5]

A baseline older than the ledger's registrar identity (commit 2b0fb49) enrols its scenario's
devices as Org1's User1, which today's chaincode refuses: such a checkout needs its
`demo/scenario.py` to enrol through `connect_registrar` (a one-line local patch in the worktree;
the code it serves is untouched).

Results: bench/results/web_compare.json. Each round is bounded in time (wrk's -d) and the
whole run in rounds; only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from psycopg import sql

from bench.web_bench import CONNECTIONS, _wrk
from tests.support.processes import free_port
from tracehub import db
from tracehub.config import PROJECT_DIR, Settings

RESULTS = PROJECT_DIR / "bench" / "results" / "web_compare.json"

# Run in each checkout with its own code: the baseline may predate any helper added here.
_BUILD = """
import json, sys
from pathlib import Path
from demo.scenario import build_scenario
from tracehub.config import Settings
result = build_scenario(Settings.from_env(), schema=sys.argv[1], log=Path(sys.argv[2]))
print("SCENARIO " + json.dumps({"path": result.path, "logger": result.logger_id}))
"""


class Side:
    """One checkout: its scenario schema and its API server."""

    def __init__(self, name: str, tree: Path, settings: Settings) -> None:
        self.name = name
        self.tree = tree
        self.python = tree / ".venv" / "bin" / "python"
        self.schema = f"bench_cmp_{name}_{secrets.token_hex(3)}"
        self.log = settings.run_dir / "logs" / f"web-compare-{name}.log"
        self.port = free_port()
        self.server: subprocess.Popen[bytes] | None = None
        self.path = ""
        self.logger = ""

    def build(self) -> None:
        out = subprocess.run(
            [str(self.python), "-c", _BUILD, self.schema, str(self.log)],
            cwd=self.tree,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        ).stdout
        line = next(x for x in out.splitlines() if x.startswith("SCENARIO "))
        found = json.loads(line.removeprefix("SCENARIO "))
        self.path, self.logger = found["path"], found["logger"]

    def serve(self, workers: int) -> None:
        env = {
            **os.environ,
            "TRACEHUB_API_SEARCH_PATH": self.schema,
            "TRACEHUB_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            "TRACEHUB_PAGE_CACHE_S": "2",
        }
        self.server = subprocess.Popen(
            [str(self.python), "-m", "api", "--port", str(self.port), "--workers", str(workers)],
            cwd=self.tree,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                url = f"http://127.0.0.1:{self.port}/healthz"
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: API server did not start; see {self.log}")
            time.sleep(0.2)

    def round(self, duration: int) -> dict[str, dict[str, Any]]:
        base = f"http://127.0.0.1:{self.port}"
        proofs = ", ".join(f'"/proofs/readings/{self.logger}/{seq}"' for seq in range(1, 48))
        proof_script = (
            f"local paths = {{{proofs}}}\nlocal i = 0\n"
            "request = function()\n  i = i % #paths + 1\n"
            "  return wrk.format('GET', paths[i])\nend\n"
        )
        return {
            "qr_page": _wrk(base + self.path, duration, "", "text/html"),
            "proof_api": _wrk(base + "/", duration, proof_script, "application/json"),
        }

    def stop(self, admin_dsn: str) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(15)
        with db.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )


def _summary(rounds: list[dict[str, dict[str, Any]]], target: str) -> dict[str, float]:
    return {
        "p95_ms_median": statistics.median(r[target]["p95_ms"] for r in rounds),
        "rps_median": statistics.median(r[target]["rps"] for r in rounds),
        "errors": sum(r[target]["errors"] for r in rounds),
    }


def run(baseline: Path, rounds: int, duration: int, workers: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("web compare: wrk is missing (scripts/install-system-deps.sh installs it)")
    settings = Settings.from_env()
    (settings.run_dir / "logs").mkdir(parents=True, exist_ok=True)
    sides = [Side("current", PROJECT_DIR, settings), Side("baseline", baseline, settings)]
    with db.connect(settings.postgres_dsn, autocommit=True) as admin:
        for side in sides:
            admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(side.schema)))
    measured: dict[str, list[dict[str, dict[str, Any]]]] = {s.name: [] for s in sides}
    try:
        for side in sides:
            side.build()
            side.serve(workers)
            print(f"web compare: {side.name} ({side.tree}) serves {side.path}")
        for number in range(rounds):
            order = sides if number % 2 == 0 else sides[::-1]
            for side in order:
                result = side.round(duration)
                measured[side.name].append(result)
                print(
                    f"  round {number + 1} {side.name:8}: QR p95 "
                    f"{result['qr_page']['p95_ms']:.1f} ms {result['qr_page']['rps']}/s; "
                    f"proof p95 {result['proof_api']['p95_ms']:.1f} ms "
                    f"{result['proof_api']['rps']}/s"
                )
    finally:
        for side in sides:
            side.stop(settings.postgres_dsn)
    results: dict[str, Any] = {
        "baseline": str(baseline),
        "rounds": rounds,
        "duration_s": duration,
        "connections": CONNECTIONS,
        "api_workers": workers,
        "cpus": os.cpu_count(),
        "raw": measured,
    }
    for target in ("qr_page", "proof_api"):
        current = _summary(measured["current"], target)
        base = _summary(measured["baseline"], target)
        results[target] = {
            "current": current,
            "baseline": base,
            "p95_ratio": round(current["p95_ms_median"] / base["p95_ms_median"], 3),
            "rps_ratio": round(current["rps_median"] / base["rps_median"], 3),
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web_compare", description=__doc__)
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per side")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    args = parser.parse_args()
    if not (args.baseline / ".venv" / "bin" / "python").exists():
        raise SystemExit(f"web compare: {args.baseline}/.venv/bin/python is missing")
    results = run(args.baseline.resolve(), args.rounds, args.duration, args.workers)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for target in ("qr_page", "proof_api"):
        r = results[target]
        print(
            f"{target}: p95 median {r['current']['p95_ms_median']:.1f} ms vs baseline "
            f"{r['baseline']['p95_ms_median']:.1f} ms (ratio {r['p95_ratio']}); "
            f"requests/s ratio {r['rps_ratio']}"
        )
    print(f"web compare: results in {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
