"""Does storing cost more as the database grows? The pipeline measured, a million readings
stored through it, and measured again.

    .venv/bin/python -m bench.ingest_flat [--fill 1000000] [--devices 8] [--readings 2500]

Each measurement is ``bench.ingest_bench``'s gateway run (two gateways, flat out) on fresh
devices; it is taken ``--repeat`` times before and after. The fill goes through the same
gateways, in chunks of ``--chunk`` readings (signed, published, verified, stored, batched to
IPFS and anchored, as any reading is), so the database after it holds what a million real
readings leave behind: rows, index entries, batches, outbox rows, and their dead versions.
The figures compared are stored readings/s and PostgreSQL's CPU per reading (from /proc,
less sensitive than throughput to other work on the machine). Results go to
``bench/results/ingest_flat.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.ingest_bench import _sign_all, bench_gateway
from tracehub import db
from tracehub.config import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "ingest_flat.json"


def database_size(settings: Settings) -> dict[str, Any]:
    """Readings stored; the size of readings' partitions and reading_keys with indexes, TOAST."""
    with db.connect(settings.postgres_dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM readings),"
            " (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            "  JOIN pg_namespace n ON n.oid = c.relnamespace"
            "  WHERE c.relkind = 'r' AND n.nspname = 'public'"
            "  AND (c.relname LIKE 'readings%%' OR c.relname = 'reading_keys'))"
        ).fetchone()
    assert row is not None
    return {"readings": int(row[0]), "readings_tables_mib": round(int(row[1]) / 2**20, 1)}


def measure(settings: Settings, devices: int, readings: int, repeat: int) -> dict[str, Any]:
    """`repeat` gateway runs on fresh devices; the median of their figures."""
    runs = []
    for number in range(1, repeat + 1):
        signed = _sign_all(settings, devices, readings)
        result = bench_gateway(settings, signed)
        runs.append(
            {
                "stored_per_s": result["stored_per_s"],
                "postgres_us_per_reading": result["cpu_us_per_reading"]["postgres"],
                "gateways_us_per_reading": sum(
                    v for k, v in result["cpu_us_per_reading"].items() if k.startswith("gateway")
                ),
                "publish_to_queryable_p95_s": result["publish_to_queryable"]["p95_s"],
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
        print(f"  run {number}/{repeat}: {runs[-1]}", flush=True)
    keys = ("stored_per_s", "postgres_us_per_reading", "gateways_us_per_reading")
    return {"runs": runs, "median": {k: statistics.median(r[k] or 0 for r in runs) for k in keys}}


def fill(settings: Settings, total: int, chunk: int, devices: int) -> dict[str, Any]:
    """Store `total` readings through the gateways, `chunk` at a time; progress per chunk."""
    started, done = time.monotonic(), 0
    while done < total:
        count = min(chunk, total - done)
        per_device = max(1, count // devices)
        signed = _sign_all(settings, devices, per_device)
        result = bench_gateway(settings, signed)
        done += per_device * devices
        elapsed = time.monotonic() - started
        print(
            f"  fill: {done:,}/{total:,} stored ({done / total:.0%}), this chunk"
            f" {result['stored_per_s']}/s, PostgreSQL {result['cpu_us_per_reading']['postgres']}"
            f" µs/reading; {elapsed:.0f} s so far",
            flush=True,
        )
    return {"readings": done, "seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fill", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--readings", type=int, default=2500, help="per device, per measurement")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    settings = Settings.from_env()
    results: dict[str, Any] = {"args": vars(args)}
    results["size_before"] = database_size(settings)
    print(f"ingest flat: before the fill {results['size_before']}", flush=True)
    results["before"] = measure(settings, args.devices, args.readings, args.repeat)
    print(f"ingest flat: filling {args.fill:,} readings ...", flush=True)
    results["fill"] = fill(settings, args.fill, args.chunk, args.devices)
    results["size_after"] = database_size(settings)
    print(f"ingest flat: after the fill {results['size_after']}", flush=True)
    results["after"] = measure(settings, args.devices, args.readings, args.repeat)
    before, after = results["before"]["median"], results["after"]["median"]
    results["after_over_before"] = {
        k: round(after[k] / before[k], 3) if before[k] else None for k in before
    }
    results["measured_at"] = datetime.now(UTC).isoformat()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"ingest flat: after / before (medians) {results['after_over_before']}")
    print(f"ingest flat: results in {RESULTS}")


if __name__ == "__main__":
    main()
