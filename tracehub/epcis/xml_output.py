"""Stored (JSON-LD) events written as an EPCIS 2.0 XML EPCISQueryDocument.

The reverse of :mod:`tracehub.epcis.xml_binding` for query results: fields in the XSD's order,
bare CBV terms as their CBV web URIs (the XML binding carries URIs), ``prefix:local`` extension
members as elements of the namespace the event's ``@context`` binds the prefix to. The output
validates against GS1's ``EPCglobal-epcis-query-2_0.xsd`` (tests/ingest/test_epcis_xml_binding.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lxml import etree

from tracehub.epcis.xml_binding import EPCIS_2_0, QUERY_2_0

__all__ = ["query_document_xml"]

_COMMON_HEAD: tuple[str, ...] = ("eventTime", "recordTime", "eventTimeZoneOffset", "eventID")
_COMMON_HEAD += ("errorDeclaration", "certificationInfo")
_TAIL = ("sourceList", "destinationList", "sensorElementList", "persistentDisposition")
_ORDER = {
    "ObjectEvent": (
        "epcList", "action", "bizStep", "disposition", "readPoint", "bizLocation",
        "bizTransactionList", "quantityList", *_TAIL, "ilmd",
    ),
    "AggregationEvent": (
        "parentID", "childEPCs", "action", "bizStep", "disposition", "readPoint", "bizLocation",
        "bizTransactionList", "childQuantityList", *_TAIL,
    ),
    "TransactionEvent": (
        "bizTransactionList", "parentID", "epcList", "action", "bizStep", "disposition",
        "readPoint", "bizLocation", "quantityList", *_TAIL,
    ),
    "TransformationEvent": (
        "inputEPCList", "inputQuantityList", "outputEPCList", "outputQuantityList",
        "transformationID", "bizStep", "disposition", "readPoint", "bizLocation",
        "bizTransactionList", *_TAIL, "ilmd",
    ),
    "AssociationEvent": (
        "parentID", "childEPCs", "childQuantityList", "action", "bizStep", "disposition",
        "readPoint", "bizLocation", "bizTransactionList", *_TAIL,
    ),
}  # fmt: skip
_WEB = {
    "bizStep": "https://ref.gs1.org/cbv/BizStep-",
    "disposition": "https://ref.gs1.org/cbv/Disp-",
    "set": "https://ref.gs1.org/cbv/Disp-",
    "unset": "https://ref.gs1.org/cbv/Disp-",
    "reason": "https://ref.gs1.org/cbv/ER-",
    "bizTransaction": "https://ref.gs1.org/cbv/BTT-",
    "source": "https://ref.gs1.org/cbv/SDT-",
    "destination": "https://ref.gs1.org/cbv/SDT-",
    "sensorReport": "https://gs1.org/voc/",
}
_SKIP = frozenset(("@context", "type", "recordTime"))


def _uri(field: str, value: Any) -> str:
    """A bare CBV term as its web URI; anything with a scheme or prefix unchanged."""
    text = _scalar(value)
    if field in _WEB and text and ":" not in text:
        return _WEB[field] + text
    return text


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _prefixes(context: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    items = context if isinstance(context, list) else [context]
    for item in items:
        if isinstance(item, Mapping):
            out.update({k: v for k, v in item.items() if isinstance(v, str) and ":" in v})
    return out


class _Writer:
    def __init__(self, prefixes: Mapping[str, str]) -> None:
        self.prefixes = prefixes

    def _tag(self, key: str) -> str | None:
        prefix, sep, local = key.partition(":")
        if sep and prefix in self.prefixes and local:
            return f"{{{self.prefixes[prefix]}}}{local}"
        return None

    def extension(self, parent: etree._Element, key: str, value: Any) -> None:
        tag = self._tag(key)
        if tag is None:
            return  # not a namespaced member: nothing XML can carry it as
        for item in value if isinstance(value, list) else [value]:
            element = etree.SubElement(parent, tag)
            if isinstance(item, Mapping):
                for k, v in item.items():
                    if k == "#text":
                        element.text = _scalar(v)
                    else:
                        self.extension(element, k, v)
            else:
                element.text = _scalar(item)

    def _members(
        self, element: etree._Element, value: Mapping[str, Any], known: Sequence[str]
    ) -> None:
        for name in known:
            if name in value:
                etree.SubElement(element, name).text = _uri(name, value[name])
        for key, item in value.items():
            if key not in known:
                self.extension(element, key, item)

    def field(self, event: etree._Element, name: str, value: Any) -> None:
        element = etree.SubElement(event, name)
        if name in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
            for epc in value:
                etree.SubElement(element, "epc").text = _scalar(epc)
        elif name.endswith("uantityList"):
            for q in value:
                qe = etree.SubElement(element, "quantityElement")
                self._members(qe, q, ("epcClass", "quantity", "uom"))
        elif name in ("bizTransactionList", "sourceList", "destinationList"):
            item_name = name[: -len("List")]
            for item in value:
                child = etree.SubElement(element, item_name)
                child.text = _scalar(item.get(item_name))
                if "type" in item:
                    child.set("type", _uri(item_name, item["type"]))
        elif name in ("readPoint", "bizLocation"):
            self._members(element, value, ("id",))
        elif name == "errorDeclaration":
            for key in ("declarationTime", "reason"):
                if key in value:
                    etree.SubElement(element, key).text = _uri(key, value[key])
            if "correctiveEventIDs" in value:
                ids = etree.SubElement(element, "correctiveEventIDs")
                for item in value["correctiveEventIDs"]:
                    etree.SubElement(ids, "correctiveEventID").text = _scalar(item)
            for key, item in value.items():
                if key not in ("declarationTime", "reason", "correctiveEventIDs"):
                    self.extension(element, key, item)
        elif name == "persistentDisposition":
            for key in ("unset", "set"):
                for item in value.get(key, []):
                    etree.SubElement(element, key).text = _uri(key, item)
        elif name == "sensorElementList":
            for sensor in value:
                self._sensor(etree.SubElement(element, "sensorElement"), sensor)
        elif name == "ilmd":
            for key, item in value.items():
                self.extension(element, key, item)
        else:
            element.text = _uri(name, value)

    def _attrs(self, element: etree._Element, values: Mapping[str, Any], field: str) -> None:
        for key, value in values.items():
            tag = self._tag(key)
            if tag is not None:
                element.set(tag, _scalar(value))
            elif ":" not in key:
                element.set(
                    key, _uri(field, value) if key in ("type", "exception") else _scalar(value)
                )

    def _sensor(self, element: etree._Element, sensor: Mapping[str, Any]) -> None:
        if "sensorMetadata" in sensor:
            self._attrs(etree.SubElement(element, "sensorMetadata"), sensor["sensorMetadata"], "")
        for report in sensor.get("sensorReport", []):
            self._attrs(etree.SubElement(element, "sensorReport"), report, "sensorReport")
        for key, item in sensor.items():
            if key not in ("sensorMetadata", "sensorReport"):
                self.extension(element, key, item)

    def event(self, parent: etree._Element, event: Mapping[str, Any], record_time: str) -> None:
        kind = str(event.get("type"))
        element = etree.SubElement(parent, kind)
        order = _ORDER.get(kind, ())
        values = {**event, "recordTime": record_time} if record_time else dict(event)
        for name in _COMMON_HEAD:
            if name in values:
                self.field(element, name, values[name])
        for name in order:
            if name in values:
                self.field(element, name, values[name])
        for key, value in event.items():
            if key not in _SKIP and key not in _COMMON_HEAD and key not in order:
                self.extension(element, key, value)


def query_document_xml(
    events: Sequence[Mapping[str, Any]], *, creation_date: str, query_name: str = "SimpleEventQuery"
) -> bytes:
    """An EPCIS 2.0 XML EPCISQueryDocument holding ``events`` (each with its ``@context``;
    a ``recordTime`` member is written as the event's recordTime)."""
    prefixes: dict[str, str] = {}
    for event in events:
        for prefix, uri in _prefixes(event.get("@context")).items():
            prefixes.setdefault(prefix, uri)
    nsmap: dict[str | None, str] = {"epcisq": QUERY_2_0, "epcis": EPCIS_2_0}
    nsmap.update({p: u for p, u in prefixes.items() if p not in ("epcisq", "epcis")})
    root = etree.Element(f"{{{QUERY_2_0}}}EPCISQueryDocument", nsmap=nsmap)
    root.set("schemaVersion", "2.0")
    root.set("creationDate", creation_date)
    body = etree.SubElement(root, "EPCISBody")
    results = etree.SubElement(body, f"{{{QUERY_2_0}}}QueryResults")
    etree.SubElement(results, "queryName").text = query_name
    event_list = etree.SubElement(etree.SubElement(results, "resultsBody"), "EventList")
    for event in events:
        writer = _Writer({**prefixes, **_prefixes(event.get("@context"))})
        writer.event(event_list, event, _scalar(event.get("recordTime")))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
