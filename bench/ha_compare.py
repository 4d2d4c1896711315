"""The ingest bench on the everyday stack and on the replicated one, back to back, same arguments.

    .venv/bin/python -m bench.ha_compare [--ha-run .run-ha] [--ha-port-offset 13000]
                                         [--rounds 1] -- [bench.ingest_bench arguments]

Runs `python -m bench.ingest_bench ARGS` first against the stack this environment names (the
everyday single-node one), then against the replicated stack (`TRACEHUB_TOPOLOGY=ha`, its run dir
and port offset, `make up-ha`), `--rounds` times alternately, and prints each figure with the
ratio ha / single: readings/s verified and stored with two gateways flat out (c1, the figure the
15 % target is about), the same divided by the one-process verify rate measured just before
(an index of the CPU the run had, for a shared machine), the two-core ceiling (2 s of CPU per
second over the CPU all components spent per reading), the time until all are anchored (c1),
and publish→anchored latency at each steady rate (c2). The machine's load average is printed
before and after each run, since the machine may be shared. Writes
bench/results/ingest_single.json, ingest_ha.json and ha_compare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tracehub.config import PROJECT_DIR

RESULTS = Path(__file__).resolve().parent / "results"
#: The ha figure may be this much below the single-node one (stored readings/s, c1).
TOLERANCE = 0.15


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _run(label: str, env: dict[str, str], args: list[str]) -> dict[str, Any]:
    output = RESULTS / f"ingest_{label}.json"
    print(f"ha_compare: {label}: load average {_load()}; bench.ingest_bench {' '.join(args)}")
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "bench.ingest_bench", *args, "--output", str(output)],
        cwd=PROJECT_DIR,
        env=env,
        check=True,
    )
    result: dict[str, Any] = json.loads(output.read_text())
    result["wall_s"] = round(time.monotonic() - started, 1)
    result["load_after"] = _load()
    print(f"ha_compare: {label} done in {result['wall_s']} s; load average {_load()}")
    return result


def figures(result: dict[str, Any]) -> dict[str, float | None]:
    """The figures compared, by name, from one ingest_bench result."""
    c1 = result["gateway"]
    verify = result["verify_one_process"]["per_s"]
    out: dict[str, float | None] = {
        "c1 stored/s": c1["stored_per_s"],
        # On a shared machine the CPU left to the run moves the raw figure: the verify rate of
        # one process, measured just before, is an index of it, and the CPU each component
        # spent per reading bounds readings/s on two cores whatever else runs.
        "c1 stored/s per verify/s": (
            round(c1["stored_per_s"] / verify, 3) if c1["stored_per_s"] else None
        ),
        "c1 two-core ceiling/s": c1["two_core_ceiling_per_s"],
        "c1 all anchored s": c1["anchored_all_in_s"],
    }
    for steady in result.get("gateway_steady", []):
        rate = steady["offered_per_s"]
        out[f"c2 {rate:g}/s anchored p50 s"] = steady["publish_to_anchored"]["p50_s"]
        out[f"c2 {rate:g}/s anchored p95 s"] = steady["publish_to_anchored"]["p95_s"]
    return out


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 3) if known else None


def compare(singles: list[dict[str, Any]], has: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's mean over the rounds on either stack and the ratio ha / single."""
    table: dict[str, Any] = {}
    for name in figures(singles[0]):
        single = _mean([figures(r).get(name) for r in singles])
        ha = _mean([figures(r).get(name) for r in has])
        ratio = round(ha / single, 3) if single and ha is not None else None
        table[name] = {"single": single, "ha": ha, "ha_over_single": ratio}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ha_compare")
    parser.add_argument("--ha-run", type=Path, default=PROJECT_DIR / ".run-ha")
    parser.add_argument("--ha-port-offset", type=int, default=13000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("bench_args", nargs="*", help="arguments of bench.ingest_bench")
    args = parser.parse_args()
    bench_args = list(args.bench_args)
    if not any(a.startswith("--skip") for a in bench_args):
        # The broker pass-through, the machine's limits, one gateway and the naive baseline
        # do not depend on the topology (or, for the baseline, measure only Fabric).
        bench_args += ["--skip", "a,l,c3,d"]
    # The environment handed to the runs: the caller's names the everyday stack.
    single_env = {**os.environ}
    ha_env = {
        **single_env,
        "TRACEHUB_RUN": str(args.ha_run),
        "TRACEHUB_TOPOLOGY": "ha",
        "TRACEHUB_PORT_OFFSET": str(args.ha_port_offset),
    }
    singles, has = [], []
    for _ in range(args.rounds):
        singles.append(_run("single", single_env, bench_args))
        has.append(_run("ha", ha_env, bench_args))
    table = compare(singles, has)
    print(f"\n{'figure':<30} {'single':>10} {'ha':>10} {'ha/single':>10}")
    for name, row in table.items():
        print(f"{name:<30} {row['single']!s:>10} {row['ha']!s:>10} {row['ha_over_single']!s:>10}")
    verdicts = {}
    for name in ("c1 stored/s", "c1 stored/s per verify/s", "c1 two-core ceiling/s"):
        ratio = table[name]["ha_over_single"]
        verdicts[name] = ratio is not None and ratio >= 1 - TOLERANCE
        print(
            f"{name}: ha is {ratio} x single, "
            f"{'within' if verdicts[name] else 'NOT within'} {TOLERANCE:.0%}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ha_compare.json").write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(),
                "bench_args": bench_args,
                "rounds": args.rounds,
                "cpus": os.cpu_count(),
                "load_average": {
                    "single": [r["load_after"] for r in singles],
                    "ha": [r["load_after"] for r in has],
                },
                "figures": table,
                "within_tolerance": verdicts,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
