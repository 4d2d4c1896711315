"""The edges one event gives (ingest/genealogy/edges.py), without a database."""

from __future__ import annotations

from decimal import Decimal

from ingest.genealogy.edges import Closing, Edge, closings, edges_of, retracts
from tracehub.gs1 import check_digit

LOT = "urn:epc:class:lgtin:9506000.012345.A1"
ITEM = "urn:epc:id:sgtin:9506000.012345.7"
PALLET = "urn:epc:id:sscc:9506000.0000000001"
A1, I7 = "lot:09506000123455/A1", "item:09506000123455/7"


def test_transformation_links_inputs_to_outputs_and_items_to_their_lot() -> None:
    event = {
        "type": "TransformationEvent",
        "inputQuantityList": [{"epcClass": "urn:epc:class:lgtin:9506000.054321.X", "quantity": 5}],
        "outputQuantityList": [{"epcClass": LOT}],
        "outputEPCList": [ITEM],
    }
    x = "lot:09506000543215/X"
    assert set(edges_of(event)) == {
        Edge(x, I7, "transforms", Decimal(5)),
        Edge(x, A1, "transforms", Decimal(5)),
        Edge(A1, I7, "instance"),
    }


def test_aggregation_add_and_delete() -> None:
    add = {"type": "AggregationEvent", "action": "ADD", "parentID": PALLET, "childEPCs": [ITEM]}
    body = "0" + "9506000" + "000000001"
    pallet = f"sscc:{body}{check_digit(body)}"
    assert edges_of(add) == [Edge(I7, pallet, "contains")]
    delete = {**add, "action": "DELETE", "childEPCs": []}
    assert edges_of(delete) == []
    assert closings(delete) == [Closing(pallet, ())]
    assert closings({**delete, "childEPCs": [ITEM]}) == [Closing(pallet, (I7,))]
    assert closings(add) == []


def test_shipping_receiving_and_error_declaration() -> None:
    store = "urn:epc:id:sgln:9506000.00009.0"
    ship = {
        "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "urn:epcglobal:cbv:bizstep:shipping",
        "quantityList": [{"epcClass": LOT, "quantity": 3, "uom": "KGM"}],
        "destinationList": [{"type": "owning_party", "destination": store}],
    }  # fmt: skip
    (edge,) = edges_of(ship)
    assert (edge.src, edge.kind, edge.quantity, edge.uom) == (A1, "ships", Decimal(3), "KGM")
    declared = {**ship, "eventID": "urn:uuid:1", "errorDeclaration": {"reason": "incorrect_data"}}
    assert edges_of(declared) == []
    assert retracts(declared) == ("urn:uuid:1", "incorrect_data")
    assert retracts(ship) == (None, None)
