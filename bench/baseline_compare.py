"""Orders or ingest bench, A/B: this checkout against a baseline checkout, alternating runs.

On this shared two-core machine the same commit's throughput moves by 30 % between runs minutes
apart, so "within 10 % of before" can only be read from runs taken alternately in one sitting
(A B, B A, A B, ...), where whatever else the machine does falls on both sides alike. This runs
each checkout's *own* bench module from its own tree (the baseline may predate today's options)
and reports each side's median and their ratio (this checkout / baseline).

    git worktree add --detach /tmp/baseline <commit>
    ln -s "$PWD/.venv" /tmp/baseline/.venv; ln -s "$PWD/.bin" /tmp/baseline/.bin
    python -m bench.baseline_compare orders --baseline /tmp/baseline [--rounds 5]
    python -m bench.baseline_compare ingest --baseline /tmp/baseline [--rounds 2]

- ``orders``: ``bench.orders_bench --runs 1`` of each checkout against this checkout's running
  stack (each serves its own API from its own tree; ``PGPASSFILE`` lets an older checkout
  connect with the stack's generated password). Needs ``make up``.
- ``ingest``: ``bench.ingest_bench`` of each checkout on *its own* stack, started from its tree
  in its own run directory (``<checkout>/.run``) before its run and stopped after: a
  baseline's gateways, broker rights and database roles differ from today's, so neither side
  can run on the other's stack. Both use the same ports, so this checkout's stack must be
  down (``make down``); it is left down.

Results: bench/results/baseline_compare_<bench>.json. Every run is bounded by its bench's own
counts and time limits; only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracehub.config import PROJECT_DIR, Settings

RESULTS_DIR = PROJECT_DIR / "bench" / "results"


def _orders_figures(result: dict[str, Any]) -> dict[str, float]:
    run = result["runs"][0]
    orders = run["orders_in_db"]
    cpu = run["cpu_seconds"]
    return {
        "orders_per_s": run["orders_per_s"],
        "p99_ms": run["latency_ms"]["p99"],
        "api_cpu_us_per_order": round(cpu["api_workers"] / orders * 1e6),
        "postgres_cpu_us_per_order": round(cpu["postgres"] / orders * 1e6),
    }


def _ingest_figures(result: dict[str, Any]) -> dict[str, float]:
    flat, single = result["gateway"], result["gateway_single"]
    steady = {run["offered_per_s"]: run for run in result["gateway_steady"]}
    figures: dict[str, float] = {
        "flat_out_stored_per_s": flat["stored_per_s"],
        "flat_out_gateways_cpu_us_per_reading": sum(
            v for k, v in flat["cpu_us_per_reading"].items() if k.startswith("gateway")
        ),
        "flat_out_postgres_cpu_us_per_reading": flat["cpu_us_per_reading"]["postgres"],
        "one_gateway_stored_per_s": single["stored_per_s"],
    }
    for rate, run in sorted(steady.items()):
        figures[f"at_{rate:.0f}_stored_per_s"] = run["stored_per_s"]
        figures[f"at_{rate:.0f}_p95_queryable_s"] = run["publish_to_queryable"]["p95_s"]
        figures[f"at_{rate:.0f}_p95_anchored_s"] = run["publish_to_anchored"]["p95_s"]
    return figures


def _read_json(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def _orders_run(tree: Path, seconds: float) -> dict[str, Any]:
    stack = Settings.from_env()  # both sides use this checkout's stack
    env = {
        **os.environ,
        "TRACEHUB_RUN": str(stack.run_dir),
        "PGPASSFILE": str(stack.postgres_passfile),
    }
    subprocess.run(
        [sys.executable, "-m", "bench.orders_bench", "--runs", "1", "--seconds", str(seconds)],
        cwd=tree,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=seconds + 300,
    )
    return _read_json(tree / "bench" / "results" / "orders.json")


def _ingest_run(tree: Path, args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "TRACEHUB_RUN": str(tree / ".run")}
    stack = ["bash", "network/stack.sh"]
    subprocess.run([*stack, "up"], cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        (tree / "bench" / "results").mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "bench.ingest_bench", *args],
            cwd=tree,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=1800,
        )
        return _read_json(tree / "bench" / "results" / "ingest.json")
    finally:
        subprocess.run([*stack, "down"], cwd=tree, env=env, stdout=subprocess.DEVNULL)


def compare(
    rounds: int,
    sides: dict[str, Path],
    run: Callable[[Path], dict[str, Any]],
    figures: Callable[[dict[str, Any]], dict[str, float]],
) -> dict[str, Any]:
    """Alternate the two sides for ``rounds`` rounds (A B, B A, ...); medians and ratios."""
    names = list(sides)
    runs: list[dict[str, Any]] = []
    for i in range(rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            started = time.strftime("%H:%M:%S")
            load = os.getloadavg()[0]
            measured = figures(run(sides[name]))
            runs.append(
                {"side": name, "round": i + 1, "started": started, "load": load, **measured}
            )
            print(
                f"  round {i + 1} {name:8} load {load:4.1f}  "
                + "  ".join(f"{k} {v}" for k, v in measured.items()),
                flush=True,
            )
    keys = [k for k in runs[0] if k not in ("side", "round", "started", "load")]
    medians = {
        name: {k: statistics.median(r[k] for r in runs if r["side"] == name) for k in keys}
        for name in names
    }
    ratios = {
        k: round(medians["this"][k] / medians["baseline"][k], 3)
        for k in keys
        if medians["baseline"][k]
    }
    return {"runs": runs, "medians": medians, "ratio_this_over_baseline": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", choices=["orders", "ingest"])
    parser.add_argument("--baseline", type=Path, required=True, help="the baseline's checkout")
    parser.add_argument("--rounds", type=int, default=None, help="orders 5, ingest 2")
    parser.add_argument("--seconds", type=float, default=12, help="orders: measured per run")
    parser.add_argument(
        "--ingest-args",
        default="--rates 5000,1500 --baseline 50",
        help="the arguments both checkouts' ingest benches understand",
    )
    parser.add_argument(
        "--this-extra",
        default="--skip l,t",
        help="ingest: more arguments for this checkout's bench (the limits are not compared)",
    )
    args = parser.parse_args()
    sides = {"baseline": args.baseline.resolve(), "this": PROJECT_DIR}
    if args.bench == "orders":
        result = compare(
            args.rounds or 5, sides, lambda tree: _orders_run(tree, args.seconds), _orders_figures
        )
    else:
        result = compare(
            args.rounds or 2,
            sides,
            lambda tree: _ingest_run(
                tree,
                args.ingest_args.split() + (args.this_extra.split() if tree == PROJECT_DIR else []),
            ),
            _ingest_figures,
        )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=sides["baseline"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    result = {"bench": args.bench, "baseline": commit, **result}
    print(json.dumps({k: result[k] for k in ("medians", "ratio_this_over_baseline")}, indent=2))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"baseline_compare_{args.bench}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results in {out}")


if __name__ == "__main__":
    main()
