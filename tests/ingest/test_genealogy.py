"""The genealogy graph on hand-made event sets, against the real PostgreSQL: aggregation add and
delete over time, a multi-input transformation, an error declaration, a cycle. Each trace is
compared with the exact expected set of nodes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ingest.epcis import capture_events
from ingest.genealogy import parse_query_id, sync, trace
from tests.support.db import connector, migrated_schema
from tracehub import db
from tracehub.config import Settings

CP = "9506000"


def lgtin(ref: str, lot: str) -> str:
    return f"urn:epc:class:lgtin:{CP}.{ref}.{lot}"


def sgtin(ref: str, serial: str) -> str:
    return f"urn:epc:id:sgtin:{CP}.{ref}.{serial}"


def sscc(ref: str) -> str:
    return f"urn:epc:id:sscc:{CP}.{ref}"


def node(uri: str) -> str:
    return parse_query_id(uri)


def event(kind: str, hour: int, event_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "eventID": f"urn:uuid:{event_id}",
        "eventTime": datetime(2026, 5, 1, hour, tzinfo=UTC).isoformat(),
        "eventTimeZoneOffset": "+00:00",
        **fields,
    }


@pytest.fixture
def conn(stack: Settings) -> Iterator[db.Connection]:
    with (
        migrated_schema(stack.postgres_dsn) as schema,
        connector(stack.postgres_dsn, schema)() as c,
    ):
        yield c


def capture(conn: db.Connection, *events: dict[str, Any]) -> None:
    capture_events(conn, list(events), source="test")
    sync(conn)
    conn.commit()


FARM_A, FARM_B = "urn:epc:id:sgln:9506000.00001.0", "urn:epc:id:sgln:9506000.00002.0"
STORE = "urn:epc:id:sgln:9506000.00009.0"


def test_multi_input_transformation_backward_and_forward(conn: db.Connection) -> None:
    capture(
        conn,
        event(
            "ObjectEvent",
            1,
            "00000000-0000-4000-8000-000000000001",
            action="ADD",
            bizStep="commissioning",
            bizLocation={"id": FARM_A},
            quantityList=[{"epcClass": lgtin("012345", "A1"), "quantity": 100, "uom": "KGM"}],
        ),
        event(
            "ObjectEvent",
            1,
            "00000000-0000-4000-8000-000000000002",
            action="ADD",
            bizStep="commissioning",
            bizLocation={"id": FARM_B},
            quantityList=[{"epcClass": lgtin("012346", "B1"), "quantity": 50, "uom": "KGM"}],
        ),
        event(
            "TransformationEvent",
            2,
            "00000000-0000-4000-8000-000000000003",
            inputQuantityList=[
                {"epcClass": lgtin("012345", "A1"), "quantity": 60, "uom": "KGM"},
                {"epcClass": lgtin("012346", "B1"), "quantity": 40, "uom": "KGM"},
            ],
            outputQuantityList=[{"epcClass": lgtin("022222", "MIX1"), "quantity": 100}],
        ),
        event(
            "ObjectEvent",
            3,
            "00000000-0000-4000-8000-000000000004",
            action="OBSERVE",
            bizStep="shipping",
            quantityList=[{"epcClass": lgtin("022222", "MIX1"), "quantity": 100}],
            destinationList=[{"type": "owning_party", "destination": STORE}],
        ),
    )
    mix = node(lgtin("022222", "MIX1"))
    back = trace(conn, mix, direction="backward")
    assert back.backward == {
        node(lgtin("012345", "A1")),
        node(lgtin("012346", "B1")),
        node(FARM_A),
        node(FARM_B),
    }
    forward = trace(conn, node(lgtin("012345", "A1")), direction="forward")
    assert forward.forward == {mix, node(STORE)}
    quantities = {(e.src, e.quantity) for e in back.edges.values() if e.kind == "transforms"}
    assert quantities == {(node(lgtin("012345", "A1")), 60), (node(lgtin("012346", "B1")), 40)}
    assert all(e.event_hash and e.event_hash.startswith("ni:///") for e in back.edges.values())


def test_aggregation_add_then_delete_over_time(conn: db.Connection) -> None:
    pallet, one, two = sscc("0000000001"), sgtin("033333", "1"), sgtin("033333", "2")
    capture(
        conn,
        event(
            "AggregationEvent",
            1,
            "00000000-0000-4000-8000-000000000011",
            action="ADD",
            parentID=pallet,
            childEPCs=[one, two],
            bizStep="packing",
        ),
        event(
            "AggregationEvent",
            5,
            "00000000-0000-4000-8000-000000000012",
            action="DELETE",
            parentID=pallet,
            childEPCs=[two],
            bizStep="unpacking",
        ),
        event(
            "ObjectEvent",
            6,
            "00000000-0000-4000-8000-000000000013",
            action="OBSERVE",
            bizStep="shipping",
            epcList=[pallet],
            destinationList=[{"type": "location", "destination": STORE}],
        ),
    )
    # Ever: both items were in the pallet; after the DELETE only the first is.
    assert trace(conn, node(pallet), direction="backward").backward == {node(one), node(two)}
    later = trace(
        conn, node(pallet), direction="backward", since=datetime(2026, 5, 1, 6, tzinfo=UTC)
    )
    assert later.backward == {node(one)}
    assert trace(conn, node(one), direction="forward").forward == {node(pallet), node(STORE)}
    # A DELETE of every child (no childEPCs) empties the pallet from then on.
    capture(
        conn,
        event(
            "AggregationEvent",
            7,
            "00000000-0000-4000-8000-000000000014",
            action="DELETE",
            parentID=pallet,
            childEPCs=[],
        ),
    )
    empty = trace(
        conn, node(pallet), direction="backward", since=datetime(2026, 5, 1, 8, tzinfo=UTC)
    )
    assert empty.backward == set()


def test_error_declaration_retracts_the_event(conn: db.Connection) -> None:
    wrong = event(
        "TransformationEvent",
        2,
        "00000000-0000-4000-8000-000000000021",
        inputQuantityList=[{"epcClass": lgtin("044444", "X"), "quantity": 1}],
        outputQuantityList=[{"epcClass": lgtin("055555", "Y"), "quantity": 1}],
    )
    right = event(
        "TransformationEvent",
        2,
        "00000000-0000-4000-8000-000000000022",
        inputQuantityList=[{"epcClass": lgtin("044444", "Z"), "quantity": 1}],
        outputQuantityList=[{"epcClass": lgtin("055555", "Y"), "quantity": 1}],
    )
    capture(conn, wrong)
    out = node(lgtin("055555", "Y"))
    assert trace(conn, out, direction="backward").backward == {node(lgtin("044444", "X"))}
    declaration = {
        **wrong,
        "errorDeclaration": {
            "declarationTime": "2026-05-02T00:00:00+00:00",
            "reason": "incorrect_data",
            "correctiveEventIDs": [right["eventID"]],
        },
    }
    capture(conn, declaration, right)
    assert trace(conn, out, direction="backward").backward == {node(lgtin("044444", "Z"))}
    retracted = conn.execute("SELECT event_id FROM genealogy_retracted").fetchall()
    assert retracted == [(wrong["eventID"],)]


def test_error_declaration_of_a_delete_reopens_the_aggregation(conn: db.Connection) -> None:
    case, item = sscc("0000000002"), sgtin("066666", "9")
    delete = event(
        "AggregationEvent",
        3,
        "00000000-0000-4000-8000-000000000032",
        action="DELETE",
        parentID=case,
        childEPCs=[item],
    )
    capture(
        conn,
        event(
            "AggregationEvent",
            1,
            "00000000-0000-4000-8000-000000000031",
            action="ADD",
            parentID=case,
            childEPCs=[item],
        ),
        delete,
    )
    after = datetime(2026, 5, 1, 4, tzinfo=UTC)
    assert trace(conn, node(case), direction="backward", since=after).backward == set()
    capture(conn, {**delete, "errorDeclaration": {"declarationTime": "2026-05-02T00:00:00Z"}})
    assert trace(conn, node(case), direction="backward", since=after).backward == {node(item)}


def test_a_cycle_ends_the_walk(conn: db.Connection) -> None:
    a, b, c = lgtin("077777", "A"), lgtin("077777", "B"), lgtin("077777", "C")

    def step(n: int, src: str, dst: str) -> dict[str, Any]:
        return event(
            "TransformationEvent",
            n,
            f"00000000-0000-4000-8000-00000000004{n}",
            inputQuantityList=[{"epcClass": src, "quantity": 1}],
            outputQuantityList=[{"epcClass": dst, "quantity": 1}],
        )

    capture(conn, step(1, a, b), step(2, b, c), step(3, c, a))
    both = trace(conn, node(a), direction="both")
    assert both.forward == {node(b), node(c)}
    assert both.backward == {node(c), node(b)}
    assert len(both.edges) == 3
    assert trace(conn, node(a), direction="forward", depth=1).forward == {node(b)}


def test_a_lot_or_item_in_every_spelling_is_one_node() -> None:
    assert parse_query_id("09506000123455/A1") == "lot:09506000123455/A1"
    assert parse_query_id("https://id.gs1.org/01/09506000123455/10/A1") == "lot:09506000123455/A1"
    assert parse_query_id(lgtin("012345", "A1")) == "lot:09506000123455/A1"
    assert parse_query_id("https://id.gs1.org/01/09506000123455/21/7") == "item:09506000123455/7"
    assert parse_query_id(sgtin("012345", "7")) == "item:09506000123455/7"
