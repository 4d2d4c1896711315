"""TraceHub's gateways and Telegraf side by side, on the same signed messages, in one run.

    .venv/bin/python -m bench.telegraf_bench [--devices 8] [--readings 1000] [--gateways 2]
                                             [--profile] [--no-telegraf]

The readings are signed once. They are published flat out by the same publisher
(bench.ingest_bench's `--publisher`: by default bench/bulk_publisher.py, one mutually
authenticated MQTT connection per device, QoS 1), first to `--gateways`
TraceHub gateways (checks, PostgreSQL, IPFS, Fabric: run (c1) of bench.ingest_bench), then, the
same envelopes again, to one Telegraf process (`mqtt_consumer` input, `postgresql` output), which
stores each payload as a string in a table of the schema `bench_telegraf` without checking or
anchoring anything. For each: messages/s from the first publish until all are in PostgreSQL, and
process CPU (from /proc) per message of the consumer, the broker and PostgreSQL.

Telegraf's set-up is bench/telegraf_peer.py's. `bench.ingest_bench` runs the same comparison as
its part (t), beside the limits; this command adds `--profile` and the gateways-only run.

`--profile` samples every gateway process with py-spy (all threads) during the gateway run
and charges the samples to the gateway's components, in µs of CPU per reading
(bench/gateway_profile.py). Writes bench/results/telegraf.json.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import gateway_profile
from bench.ingest_bench import PUBLISHERS, _publish, _sign_all, bench_gateway, telegraf_ratios
from bench.telegraf_peer import TELEGRAF, bench_telegraf
from tracehub.config import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "telegraf.json"


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
        "--publisher", choices=PUBLISHERS, default="bulk", help="see bench.ingest_bench"
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
        results["telegraf"] = bench_telegraf(
            settings,
            total,
            lambda: _publish(settings, signed, publisher=args.publisher),
            RESULTS.parent / "telegraf.log",
        )
        print(f"  {json.dumps(results['telegraf'])}", flush=True)
        results["tracehub_vs_telegraf"] = telegraf_ratios(results["tracehub"], results["telegraf"])
        print(f"  beside Telegraf: {results['tracehub_vs_telegraf']}", flush=True)
    results["measured_at"] = datetime.now(UTC).isoformat()
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"telegraf bench: results in {RESULTS}")


if __name__ == "__main__":
    main()
