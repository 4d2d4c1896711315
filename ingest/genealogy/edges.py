"""The genealogy edges one EPCIS event gives (a pure function of the event).

Direction is the flow of goods, upstream -> downstream:

- TransformationEvent: every input -> every output (``transforms``), with the input's quantity;
  an output lot -> each output SGTIN of its GTIN (``instance``);
- AggregationEvent / AssociationEvent ADD (and OBSERVE): child -> parent (``contains``); DELETE
  closes the open edges of the parent (the listed children, or all when none is listed);
- ObjectEvent ADD at a business location: location -> object (``origin``); with an ILMD lot
  number, lot -> each SGTIN (``instance``);
- any event with a destinationList: object -> each destination (``ships``, or ``receives``
  for a receiving step, which also links object -> its business location);
- any event with a bizTransactionList: object -> each transaction (``transaction``).

An event carrying an errorDeclaration gives no edge: it retracts (:func:`retracts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ingest.genealogy.ids import canonical

__all__ = ["Closing", "Edge", "closings", "edges_of", "retracts"]


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    kind: str
    quantity: Decimal | None = None
    uom: str | None = None


@dataclass(frozen=True)
class Closing:
    """An aggregation DELETE: the open ``contains`` edges into ``parent`` from ``children``
    (every child when empty) end at the event's time."""

    parent: str
    children: tuple[str, ...]


def step_of(event: Mapping[str, Any]) -> str:
    value = str(event.get("bizStep") or "")
    return value.rsplit("-", 1)[-1].rsplit(":", 1)[-1]


def _quantities(
    event: Mapping[str, Any], name: str
) -> list[tuple[str, Decimal | None, str | None]]:
    out = []
    for element in event.get(name) or []:
        if isinstance(element, Mapping) and isinstance(element.get("epcClass"), str):
            raw = element.get("quantity")
            quantity = Decimal(str(raw)) if isinstance(raw, int | float) else None
            uom = element.get("uom")
            out.append(
                (canonical(element["epcClass"]), quantity, uom if isinstance(uom, str) else None)
            )
    return out


def _ids(event: Mapping[str, Any], name: str) -> list[tuple[str, Decimal | None, str | None]]:
    return [(canonical(x), None, None) for x in event.get(name) or [] if isinstance(x, str)]


def _place(event: Mapping[str, Any], name: str) -> str | None:
    value = event.get(name)
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return canonical(value["id"])
    return None


def _typed_ids(event: Mapping[str, Any], name: str, key: str) -> list[str]:
    out = []
    for element in event.get(name) or []:
        if isinstance(element, Mapping) and isinstance(element.get(key), str):
            out.append(canonical(element[key]))
    return out


def edges_of(event: Mapping[str, Any]) -> list[Edge]:
    """The edges the event adds (none for an error declaration)."""
    if "errorDeclaration" in event:
        return []
    kind = event.get("type")
    action = event.get("action")
    edges: list[Edge] = []
    subjects: list[tuple[str, Decimal | None, str | None]]
    if kind == "TransformationEvent":
        inputs = _ids(event, "inputEPCList") + _quantities(event, "inputQuantityList")
        outputs = _ids(event, "outputEPCList") + _quantities(event, "outputQuantityList")
        edges += [Edge(i, o, "transforms", q, u) for i, q, u in inputs for o, _, _ in outputs]
        # Items made in the same event as a lot of their GTIN are instances of that lot.
        lots = {o[4:].split("/", 1)[0]: o for o, _, _ in outputs if o.startswith("lot:")}
        for o, _, _ in outputs:
            if o.startswith("item:") and o[5:].split("/", 1)[0] in lots:
                edges.append(Edge(lots[o[5:].split("/", 1)[0]], o, "instance"))
        subjects = outputs
    elif kind in ("AggregationEvent", "AssociationEvent"):
        parent = event.get("parentID")
        children = _ids(event, "childEPCs") + _quantities(event, "childQuantityList")
        if isinstance(parent, str) and action in ("ADD", "OBSERVE"):
            edges += [Edge(c, canonical(parent), "contains", q, u) for c, q, u in children]
        subjects = [(canonical(parent), None, None)] if isinstance(parent, str) else children
    else:
        subjects = _ids(event, "epcList") + _quantities(event, "quantityList")
        parent = event.get("parentID")
        if isinstance(parent, str):
            subjects.append((canonical(parent), None, None))
    step = step_of(event)
    where = _place(event, "bizLocation")
    if kind == "ObjectEvent" and action == "ADD" and where is not None:
        edges += [Edge(where, s, "origin", q, u) for s, q, u in subjects]
    lot = _ilmd_lot(event)
    if kind == "ObjectEvent" and lot is not None:
        for s, _, _ in subjects:
            if s.startswith("item:"):
                gtin = s[5:].split("/", 1)[0]
                edges.append(Edge(f"lot:{gtin}/{lot}", s, "instance"))
    to = "receives" if step == "receiving" else "ships"
    for dest in _typed_ids(event, "destinationList", "destination"):
        edges += [Edge(s, dest, to, q, u) for s, q, u in subjects]
    if step == "receiving" and where is not None:
        edges += [Edge(s, where, "receives", q, u) for s, q, u in subjects]
    for tx in _typed_ids(event, "bizTransactionList", "bizTransaction"):
        edges += [Edge(s, tx, "transaction") for s, _, _ in subjects]
    return [e for e in dict.fromkeys(edges) if e.src != e.dst]


def _ilmd_lot(event: Mapping[str, Any]) -> str | None:
    ilmd = event.get("ilmd")
    if not isinstance(ilmd, Mapping):
        return None
    for key in ("cbvmda:lotNumber", "lotNumber", "https://gs1.org/voc/lotNumber"):
        if isinstance(ilmd.get(key), str):
            return str(ilmd[key])
    return None


def closings(event: Mapping[str, Any]) -> list[Closing]:
    """The aggregation DELETE of this event, if it is one."""
    if "errorDeclaration" in event or event.get("action") != "DELETE":
        return []
    if event.get("type") not in ("AggregationEvent", "AssociationEvent"):
        return []
    parent = event.get("parentID")
    if not isinstance(parent, str):
        return []
    children = [c for c, _, _ in _ids(event, "childEPCs") + _quantities(event, "childQuantityList")]
    return [Closing(canonical(parent), tuple(children))]


def retracts(event: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(eventID retracted, reason) of an error declaration; (None, None) otherwise. The declared
    event is the one of the same eventID (EPCIS 2.0, 7.4.1.4)."""
    declaration = event.get("errorDeclaration")
    if not isinstance(declaration, Mapping):
        return None, None
    event_id = event.get("eventID")
    reason = declaration.get("reason")
    return (str(event_id) if isinstance(event_id, str) else None), (
        str(reason) if isinstance(reason, str) else None
    )


def event_time(event: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["eventTime"]))
