"""Trace, recall and FSMA export over a generated chain (demo/supply_chain.py) at scale.

    .venv/bin/python -m bench.trace_bench [--events 1000000] [--seed 1] [--samples 200]
                                          [--database tracehub_trace_bench] [--reload]

Targets: trace backward + forward of a retail item to its farms and every sibling destination
p95 < 200 ms; recall affected-set computation < 1 s; FSMA 204 export of 10,000 rows < 2 s.

The chain is bulk-loaded (COPY, demo/supply_chain_load.py) into a database of its own on the
stack's PostgreSQL, created and migrated here, so the stack's database stays small; a database
already holding the same chain (size and seed) is reused unless ``--reload``. Then:

- trace: for sampled retail items, the backward + forward trace of the item, then the forward
  trace of each farm lot found (its sibling destinations), each checked against the
  generator's answers; one sample is all of that; p50 / p95 / max;
- recall: the affected set (ingest/genealogy/affected.py) of a sampled farm lot;
- FSMA: 10,000 rows (the first critical tracking events of the chain) read, shaped, written as
  CSV and as XLSX, three times (the first from cold pages);
- memory (this process's peak RSS) and the database's size.

Writes bench/results/trace.json. Query times are of the library the API calls (no HTTP).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from demo.supply_chain import SupplyChain
from demo.supply_chain_load import bulk_load
from ingest.genealogy import trace
from ingest.genealogy.affected import affected_set
from ingest.genealogy.fsma import fsma_csv, fsma_rows, fsma_xlsx, trace_events
from ingest.schema import migrate
from tracehub import db
from tracehub.config import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "trace.json"


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(p95 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def _database(dsn: str, name: str) -> str:
    """The bench database's DSN, created (and migrated) when missing."""
    with db.connect(dsn, autocommit=True) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if found is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = make_conninfo("", **{**conninfo_to_dict(dsn), "dbname": name})
    with db.connect(target, autocommit=True) as conn:
        migrate(conn)
    return target


def _load(conn: psycopg.Connection, chain: SupplyChain, reload: bool) -> dict[str, Any]:
    marker = f"bulk:{chain.seed}:{chain.product_lots}"
    have = conn.execute("SELECT source FROM epcis_events LIMIT 1").fetchone()
    if have is not None and have[0] == marker and not reload:
        return {"reused": True}
    conn.execute("TRUNCATE genealogy_edges, epcis_events CASCADE")
    started = time.perf_counter()
    events, edges = bulk_load(conn, chain.events, source=marker)
    conn.commit()
    loaded = time.perf_counter() - started
    conn.execute("ANALYZE epcis_events")
    conn.execute("ANALYZE genealogy_edges")
    conn.commit()
    return {"reused": False, "events": events, "edges": edges, "load_s": round(loaded, 1)}


def _traces(conn: psycopg.Connection, chain: SupplyChain, samples: int) -> dict[str, Any]:
    times: list[float] = []
    nodes: list[int] = []
    for j, n in chain.sample(samples):
        want = chain.answers(j, n)
        started = time.perf_counter()
        got = trace(conn, want.item, direction="both")
        siblings = {lot: trace(conn, lot, direction="forward") for lot in want.farm_lots}
        times.append(time.perf_counter() - started)
        assert got.backward == want.backward and got.forward == want.forward, (j, n)
        for lot, found in siblings.items():
            assert found.forward == want.farm_forward[lot], lot
        nodes.append(len(got.nodes) + sum(len(s.nodes) for s in siblings.values()))
    return {**_stats(times), "nodes_mean": round(statistics.mean(nodes), 1), "checked": True}


def _recalls(conn: psycopg.Connection, chain: SupplyChain, samples: int) -> dict[str, Any]:
    times: list[float] = []
    sizes: list[int] = []
    for j, n in chain.sample(samples, seed=1):
        lot = chain.answers(j, n).farm_lots[0]
        started = time.perf_counter()
        found = affected_set(conn, [lot])
        times.append(time.perf_counter() - started)
        sizes.append(len(found.nodes))
        conn.rollback()
    return {**_stats(times), "affected_nodes_mean": round(statistics.mean(sizes), 1)}


def _fsma(conn: psycopg.Connection, rows_wanted: int) -> dict[str, Any]:
    started = time.perf_counter()
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT event_id FROM epcis_events WHERE biz_step = ANY(%s) ORDER BY seq LIMIT %s",
            (["harvesting", "shipping", "receiving", "packing", "transforming"], rows_wanted),
        ).fetchall()
    ]
    events = trace_events(conn, ids)
    rows = fsma_rows(conn, events, base_url="http://127.0.0.1:18000")
    shaped = time.perf_counter() - started
    csv_started = time.perf_counter()
    csv_bytes = fsma_csv(rows)
    csv_s = time.perf_counter() - csv_started
    xlsx_started = time.perf_counter()
    xlsx_bytes = fsma_xlsx(rows)
    xlsx_s = time.perf_counter() - xlsx_started
    return {
        "rows": len(rows),
        "read_and_shape_s": round(shaped, 3),
        "csv_total_s": round(shaped + csv_s, 3),
        "xlsx_total_s": round(shaped + xlsx_s, 3),
        "csv_bytes": len(csv_bytes),
        "xlsx_bytes": len(xlsx_bytes),
    }


def run(events: int, seed: int, samples: int, database: str, reload: bool) -> dict[str, Any]:
    settings = Settings.from_env()
    target = _database(settings.postgres_dsn, database)
    chain = SupplyChain.for_events(events, seed)
    with db.connect(target) as conn:
        load = _load(conn, chain, reload)
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM epcis_events), (SELECT count(*) FROM genealogy_edges)"
        ).fetchone()
        assert counts is not None
        result = {
            "database": database,
            "chain": {"seed": seed, "product_lots": chain.product_lots, "events": counts[0],
                      "edges": counts[1]},
            "load": load,
            "trace_item_and_siblings": _traces(conn, chain, samples),
            "recall_affected_set": _recalls(conn, chain, max(10, samples // 10)),
            # the first export reads cold pages; the next two show the warm cost
            "fsma_export": [_fsma(conn, 10_000) for _ in range(3)],
        }  # fmt: skip
        size = conn.execute(
            "SELECT pg_size_pretty(pg_database_size(current_database())),"
            " pg_database_size(current_database()),"
            " pg_size_pretty(pg_total_relation_size('genealogy_edges')),"
            " pg_size_pretty(pg_total_relation_size('epcis_events'))"
        ).fetchone()
        assert size is not None
    result["database_size"] = {
        "total": size[0], "bytes": size[1], "genealogy_edges": size[2], "epcis_events": size[3]
    }  # fmt: skip
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["bench_peak_rss_mib"] = peak_kib // 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trace_bench", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--database", default="tracehub_trace_bench")
    parser.add_argument("--reload", action="store_true")
    args = parser.parse_args()
    result = run(args.events, args.seed, args.samples, args.database, args.reload)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
