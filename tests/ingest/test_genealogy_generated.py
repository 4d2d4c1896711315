"""Sampled traces on a generated chain (demo/supply_chain.py) equal the generator's answers:
5,000 events bulk-loaded, and a smaller chain captured through the real capture path and synced
into the graph, which must give the same edges as the bulk loader."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demo.supply_chain import SupplyChain
from demo.supply_chain_load import bulk_load
from ingest.epcis import capture_events
from ingest.genealogy import sync, trace
from tests.support.db import connector, migrated_schema
from tracehub import db
from tracehub.config import Settings


@pytest.fixture
def conn(stack: Settings) -> Iterator[db.Connection]:
    with (
        migrated_schema(stack.postgres_dsn) as schema,
        connector(stack.postgres_dsn, schema)() as c,
    ):
        yield c


def test_sampled_traces_equal_the_generators_answers(conn: db.Connection) -> None:
    chain = SupplyChain.for_events(5000, seed=7)
    events, edges = bulk_load(conn, chain.events, source="bulk:7")
    conn.commit()
    assert events >= 4990 and edges > events
    for j, n in chain.sample(25):
        want = chain.answers(j, n)
        got = trace(conn, want.item, direction="both")
        assert got.backward == want.backward, (j, n)
        assert got.forward == want.forward, (j, n)
        for farm_lot in want.farm_lots:
            siblings = trace(conn, farm_lot, direction="forward")
            assert siblings.forward == want.farm_forward[farm_lot], farm_lot


def test_captured_chain_gives_the_bulk_loaders_graph(stack: Settings) -> None:
    chain = SupplyChain.for_events(200, seed=3)
    dsn = stack.postgres_dsn

    def edges(c: db.Connection) -> list[tuple[str, str, str]]:
        rows = c.execute("SELECT src, dst, kind FROM genealogy_edges ORDER BY 1, 2, 3").fetchall()
        return [tuple(r) for r in rows]

    with migrated_schema(dsn) as one, migrated_schema(dsn) as two:
        with connector(dsn, one)() as captured:
            capture_events(captured, list(chain.events()), source="test")
            sync(captured)
            captured.commit()
            via_capture = edges(captured)
            j, n = chain.sample(1)[0]
            want = chain.answers(j, n)
            got = trace(captured, want.item, direction="both")
            assert (got.backward, got.forward) == (want.backward, want.forward)
        with connector(dsn, two)() as loaded:
            bulk_load(loaded, chain.events, source="bulk:3")
            loaded.commit()
            assert edges(loaded) == via_capture
            assert sync(loaded) == 0  # the cursor is past the loaded events
