"""EPCIS XML (2.0, and 1.2 upgraded) read into the JSON-LD form TraceHub stores and hashes.

An XML capture document becomes exactly what a JSON-LD capture would have been: the same event
objects (the EPCIS 2.0 XML/JSON binding's field names, extension elements as ``prefix:local``
members, their namespaces added to ``@context``), so an XML event and its JSON-LD twin are stored
alike and have one CBV 2.0 hash. Steps (docs/epcis.md, "XML"):

1. parse safely: no DTD loading, no entity expansion, no network (``_PARSER``);
2. validate against GS1's XSD of the document's version (2.0, or 1.2; shipped in ``gs1/``);
   the first schema error is reported with its line and the rule it broke;
3. a 1.2 document is upgraded with GS1's ``convert-1.2-to-2.0.xsl`` (lxml runs XSLT);
4. each event element is mapped to its JSON-LD object (:func:`event_to_json`).
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Iterator
from typing import Any

from lxml import etree

from tracehub.epcis.errors import EPCISValidationError
from tracehub.epcis.schema import DEFAULT_CONTEXT

__all__ = [
    "EPCIS_1_2",
    "EPCIS_2_0",
    "XmlDocument",
    "parse_xml_document",
]

EPCIS_2_0 = "urn:epcglobal:epcis:xsd:2"
EPCIS_1_2 = "urn:epcglobal:epcis:xsd:1"
QUERY_2_0 = "urn:epcglobal:epcis-query:xsd:2"
QUERY_1_2 = "urn:epcglobal:epcis-query:xsd:1"
MASTERDATA_2_0 = "urn:epcglobal:epcis-masterdata:xsd:2"
MASTERDATA_1_2 = "urn:epcglobal:epcis-masterdata:xsd:1"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
EVENT_TYPES = (
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
)
_EPC_LISTS = ("epcList", "childEPCs", "inputEPCList", "outputEPCList")
_QUANTITY_LISTS = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")
_TYPED_LISTS = {
    "bizTransactionList": "bizTransaction",
    "sourceList": "source",
    "destinationList": "destination",
}
_SENSOR_NUMBERS = frozenset(
    ("value", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue")
)
#: Wrappers of EPCIS 1.x that 2.0 folds into their parent (GS1's stylesheet leaves some).
_WRAPPERS = frozenset(("extension", "baseExtension"))
#: CBV values: XML carries URNs (or web URIs / ``gs1:`` CURIEs), the JSON-LD binding the bare
#: term, which the EPCIS context expands back (so the CBV 2.0 hash is the same).
_VOCABULARY = {
    "bizStep": ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-"),
    "disposition": ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-"),
    "set": ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-"),
    "unset": ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-"),
    "reason": ("urn:epcglobal:cbv:er:", "https://ref.gs1.org/cbv/ER-"),
    "bizTransaction": ("urn:epcglobal:cbv:btt:", "https://ref.gs1.org/cbv/BTT-"),
    "source": ("urn:epcglobal:cbv:sdt:", "https://ref.gs1.org/cbv/SDT-"),
    "destination": ("urn:epcglobal:cbv:sdt:", "https://ref.gs1.org/cbv/SDT-"),
    "sensorReport": ("gs1:", "https://gs1.org/voc/"),
}
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

# why: a capture body is untrusted. No DTD is loaded and no entity expanded (billion laughs,
# external entities), no URL is ever fetched, and huge_tree stays off (libxml2's depth limits).
_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


def _parser() -> etree.XMLParser:
    return etree.XMLParser(**_PARSER_OPTIONS)


def _gs1_file(*parts: str) -> Any:
    return importlib.resources.files("tracehub.epcis").joinpath("gs1", *parts)


@functools.cache
def _schema(kind: str) -> etree.XMLSchema:
    """GS1's XSD, compiled once (imports resolve to the files beside it, never the network)."""
    name = {
        "2.0": ("xsd", "EPCglobal-epcis-2_0.xsd"),
        "query-2.0": ("xsd", "EPCglobal-epcis-query-2_0.xsd"),
        "masterdata-2.0": ("xsd", "EPCglobal-epcis-masterdata-2_0.xsd"),
        "1.2": ("xsd-1.2", "EPCglobal-epcis-1_2.xsd"),
        "query-1.2": ("xsd-1.2", "EPCglobal-epcis-query-1_2.xsd"),
        "masterdata-1.2": ("xsd-1.2", "EPCglobal-epcis-masterdata-1_2.xsd"),
    }[kind]
    with importlib.resources.as_file(_gs1_file(*name)) as path:
        return etree.XMLSchema(etree.parse(str(path), _parser()))


@functools.cache
def _upgrade() -> etree.XSLT:
    """GS1's EPCIS 1.2 -> 2.0 stylesheet (no document() or network access allowed)."""
    with importlib.resources.as_file(_gs1_file("xsl", "convert-1.2-to-2.0.xsl")) as path:
        xslt = etree.parse(str(path), _parser())
    access = etree.XSLTAccessControl.DENY_ALL
    return etree.XSLT(xslt, access_control=access)


class XmlDocument:
    """An XML capture document read into JSON-LD terms."""

    def __init__(
        self, *, version: str, kind: str, context: list[Any], events: list[dict[str, Any]]
    ) -> None:
        self.version = version  #: "2.0" or "1.2" (as received)
        self.kind = kind  #: EPCISDocument, EPCISQueryDocument or EPCISMasterDataDocument
        self.context = context
        self.events = events

    def as_jsonld(self) -> dict[str, Any]:
        """The JSON-LD EPCISDocument with the same events."""
        return {
            "@context": self.context,
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": "1970-01-01T00:00:00Z",
            "epcisBody": {"eventList": self.events},
        }


def _syntax_error(exc: etree.XMLSyntaxError) -> EPCISValidationError:
    line = exc.lineno if exc.lineno is not None else 0
    code = exc.code if isinstance(exc.code, int) else 0
    name = etree.ErrorTypes._getName(code, "XML_SYNTAX")
    return EPCISValidationError(f"line {line}: {name}: {exc.msg}", path="$")


def _refuse_entities(tree: etree._ElementTree) -> None:
    """A DOCTYPE may name the root (GS1's examples have one) but may not declare entities:
    they are never expanded, and an unexpanded reference only confuses the validator."""
    dtd = tree.docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise EPCISValidationError(
            "line 1: ENTITY_DECLARATION: documents declaring XML entities are refused", path="$"
        )


def _validate(tree: etree._ElementTree, kind: str) -> None:
    schema = _schema(kind)
    try:
        valid = schema.validate(tree)
    except etree.XMLSchemaValidateError as exc:
        raise EPCISValidationError(f"the document cannot be validated: {exc}", path="$") from exc
    if valid:
        return
    error = schema.error_log[0]
    raise EPCISValidationError(
        f"line {error.line}: {error.type_name}: {error.message} (GS1 EPCIS {kind} XSD)", path="$"
    )


def _schema_kind(root: etree._Element) -> tuple[str, str]:
    """(the XSD to validate with, the document kind) from the root element's name."""
    qname = etree.QName(root)
    kinds = {
        (EPCIS_2_0, "EPCISDocument"): "2.0",
        (QUERY_2_0, "EPCISQueryDocument"): "query-2.0",
        (MASTERDATA_2_0, "EPCISMasterDataDocument"): "masterdata-2.0",
        (EPCIS_1_2, "EPCISDocument"): "1.2",
        (QUERY_1_2, "EPCISQueryDocument"): "query-1.2",
        (MASTERDATA_1_2, "EPCISMasterDataDocument"): "masterdata-1.2",
    }
    kind = kinds.get((qname.namespace or "", qname.localname))
    if kind is None:
        raise EPCISValidationError(
            f"line {root.sourceline}: the root element {qname.text} is not an EPCIS 2.0 or 1.2 "
            "EPCISDocument, EPCISQueryDocument or EPCISMasterDataDocument",
            path="$",
        )
    return kind, qname.localname


def parse_xml_document(data: bytes) -> XmlDocument:
    """Parse, validate and read an EPCIS XML document; raises :class:`EPCISValidationError`."""
    try:
        tree = etree.ElementTree(etree.fromstring(data, _parser()))
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc) from exc
    _refuse_entities(tree)
    root = tree.getroot()
    kind, name = _schema_kind(root)
    _validate(tree, kind)
    version = "1.2" if kind.endswith("1.2") else "2.0"
    reader = _Reader()
    events = [reader.event(element) for element in _event_elements(root)]
    if kind == "1.2":
        events = _upgraded_events(tree, reader, events)
    return XmlDocument(version=version, kind=name, context=reader.context(), events=events)


def _upgraded_events(
    tree: etree._ElementTree, reader: _Reader, direct: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The events of a 1.2 document as GS1's 1.2 -> 2.0 stylesheet converts them.

    The input passed the 1.2 XSD. What the stylesheet leaves in 1.2 places (``baseExtension``,
    nested ``extension``) is folded like a 2.0 extension wrapper. Where the stylesheet loses
    fields (it drops an AssociationEvent's sourceList and destinationList), the event read
    directly from the 1.2 element is taken instead: a conversion never drops data silently.
    """
    try:
        upgraded = _upgrade()(tree).getroot()
    except etree.XSLTError as exc:
        raise EPCISValidationError(f"EPCIS 1.2 -> 2.0 conversion failed: {exc}") from exc
    converted = [reader.event(element) for element in _event_elements(upgraded)]
    if len(converted) != len(direct):
        raise EPCISValidationError(
            f"EPCIS 1.2 -> 2.0 conversion gave {len(converted)} events for {len(direct)}"
        )
    return [
        ours if _leaves(ours) - _leaves(theirs) else theirs
        for ours, theirs in zip(direct, converted, strict=True)
    ]


def _leaves(value: Any, path: str = "") -> set[str]:
    """Every scalar of a JSON value with its member path (list positions left out)."""
    if isinstance(value, dict):
        return set().union(*(_leaves(v, f"{path}.{k}") for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(_leaves(v, path) for v in value))
    return {f"{path}={value}"}


def _event_elements(root: etree._Element) -> Iterator[etree._Element]:
    """The event elements of a document, in order (EventList of the body or query results)."""
    for event_list in root.iter("EventList"):
        for element in event_list:
            if not isinstance(element.tag, str):
                continue
            yield from _unwrap_event(element)


def _unwrap_event(element: etree._Element) -> Iterator[etree._Element]:
    local = etree.QName(element).localname
    if local in EVENT_TYPES and etree.QName(element).namespace is None:
        yield element
    elif local in _WRAPPERS:  # 1.x: TransformationEvent / AssociationEvent inside extension
        for child in element:
            if isinstance(child.tag, str):
                yield from _unwrap_event(child)


def _text(element: etree._Element) -> str:
    return (element.text or "").strip()


def _bare(field: str, value: str) -> str:
    """The JSON-LD binding's bare CBV term for ``value`` of ``field`` (others unchanged)."""
    for prefix in _VOCABULARY.get(field, ()):
        if value.startswith(prefix) and len(value) > len(prefix):
            return value[len(prefix) :]
    return value


def _number(text: str) -> int | float | str:
    if not _NUMBER.fullmatch(text):
        return text
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    return float(text)


class _Reader:
    """Maps event elements to JSON-LD objects, collecting the extension namespaces used."""

    def __init__(self) -> None:
        self._prefixes: dict[str, str] = {}  # prefix -> namespace URI
        self._by_uri: dict[str, str] = {}

    def context(self) -> list[Any]:
        extra = dict(sorted(self._prefixes.items()))
        return [DEFAULT_CONTEXT, extra] if extra else [DEFAULT_CONTEXT]

    def _prefix(self, uri: str, wanted: str | None) -> str:
        if uri in self._by_uri:
            return self._by_uri[uri]
        base = wanted or "ns"
        prefix, n = base, 1
        # why: two namespaces may share a prefix in different parts of a document; JSON-LD has
        # one context, so the later one gets a fresh name (the hash uses the URI, not the name).
        while prefix in self._prefixes or prefix in ("gs1", "cbv", "epcis", "cbvmda", "xsd"):
            if self._prefixes.get(prefix) == uri:
                break
            n += 1
            prefix = f"{base}{n}"
        self._prefixes[prefix] = uri
        self._by_uri[uri] = prefix
        return prefix

    def _key(self, element: etree._Element, name: Any) -> str:
        """``prefix:local`` of a namespaced element or attribute name, else the local name."""
        qname = etree.QName(name)
        if qname.namespace is None:
            return str(qname.localname)
        wanted = None
        for prefix, uri in element.nsmap.items():
            if uri == qname.namespace and prefix:
                wanted = prefix
                break
        return f"{self._prefix(qname.namespace, wanted)}:{qname.localname}"

    def _children(self, element: etree._Element) -> Iterator[etree._Element]:
        """Child elements with 1.x/2.0 ``extension`` wrappers folded into their parent."""
        for child in element:
            if not isinstance(child.tag, str):
                continue
            qname = etree.QName(child)
            if qname.namespace is None and qname.localname in _WRAPPERS:
                yield from self._children(child)
            else:
                yield child

    def _attributes(self, element: etree._Element) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in element.attrib.items():
            if etree.QName(name).namespace == _XSI:
                continue
            out[self._key(element, name)] = value
        return out

    def extension(self, element: etree._Element) -> Any:
        """A user extension element: its text, or an object of its children (repeated names
        become lists), with its attributes as members."""
        members: dict[str, Any] = self._attributes(element)
        children = list(self._children(element))
        if not children and not members:
            return _text(element)
        self._extensions_into(members, children)
        if not children and _text(element):
            members["#text"] = _text(element)
        return members

    def _extensions_into(self, target: dict[str, Any], children: list[etree._Element]) -> None:
        for child in children:
            key = self._key(child, child.tag)
            value = self.extension(child)
            if key in target:
                existing = target[key]
                target[key] = (
                    [*existing, value] if isinstance(existing, list) else [existing, value]
                )
            else:
                target[key] = value

    def event(self, element: etree._Element) -> dict[str, Any]:
        """One event element as its JSON-LD object (fields in the XSD's order)."""
        event: dict[str, Any] = {"type": etree.QName(element).localname}
        extensions: list[etree._Element] = []
        for child in self._children(element):
            qname = etree.QName(child)
            if qname.namespace is not None:
                extensions.append(child)
                continue
            name = qname.localname
            if name in _EPC_LISTS:
                event[name] = [_text(epc) for epc in self._children(child)]
            elif name in _QUANTITY_LISTS:
                event[name] = [self._quantity(q) for q in self._children(child)]
            elif name in _TYPED_LISTS:
                items = self._children(child)
                event[name] = [self._typed(item, _TYPED_LISTS[name]) for item in items]
            elif name in ("readPoint", "bizLocation"):
                event[name] = self._location(child)
            elif name == "errorDeclaration":
                event[name] = self._error_declaration(child)
            elif name == "persistentDisposition":
                event[name] = self._persistent_disposition(child)
            elif name == "sensorElementList":
                event[name] = [self._sensor_element(s) for s in self._children(child)]
            elif name == "ilmd":
                ilmd: dict[str, Any] = {}
                self._extensions_into(ilmd, list(self._children(child)))
                event[name] = ilmd
            elif list(self._children(child)):
                # an unqualified element EPCIS 2.0 does not define (a 1.2 document's reserved
                # extension slot): kept under its own name, as an object
                event[name] = self.extension(child)
            else:
                event[name] = _bare(name, _text(child))
        self._extensions_into(event, extensions)
        return event

    def _quantity(self, element: etree._Element) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for child in self._children(element):
            name = etree.QName(child).localname
            if name == "quantity" and not _text(child):
                continue  # xsi:nil quantity: the JSON binding omits the member
            out[name] = _number(_text(child)) if name == "quantity" else _text(child)
        return out

    def _typed(self, element: etree._Element, name: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if element.get("type") is not None:
            out["type"] = _bare(name, element.get("type") or "")
        out[name] = _text(element)
        return out

    def _location(self, element: etree._Element) -> dict[str, Any]:
        out: dict[str, Any] = {}
        extensions = []
        for child in self._children(element):
            if etree.QName(child).namespace is None:
                out[etree.QName(child).localname] = _text(child)
            else:
                extensions.append(child)
        self._extensions_into(out, extensions)
        return out

    def _error_declaration(self, element: etree._Element) -> dict[str, Any]:
        out: dict[str, Any] = {}
        extensions = []
        for child in self._children(element):
            name = etree.QName(child).localname
            if etree.QName(child).namespace is not None:
                extensions.append(child)
            elif name == "correctiveEventIDs":
                out[name] = [_text(c) for c in self._children(child)]
            else:
                out[name] = _bare(name, _text(child))
        self._extensions_into(out, extensions)
        return out

    def _persistent_disposition(self, element: etree._Element) -> dict[str, Any]:
        out: dict[str, list[str]] = {}
        for child in self._children(element):
            name = etree.QName(child).localname
            out.setdefault(name, []).append(_bare(name, _text(child)))
        return out

    def _sensor_element(self, element: etree._Element) -> dict[str, Any]:
        out: dict[str, Any] = {}
        extensions = []
        for child in self._children(element):
            name = etree.QName(child).localname
            if etree.QName(child).namespace is not None:
                extensions.append(child)
            elif name == "sensorMetadata":
                out[name] = self._attributes(child)
            elif name == "sensorReport":
                out.setdefault(name, []).append(self._sensor_report(child))
            else:  # not an EPCIS 2.0 field (a 1.2 document's spelling): kept, never dropped
                out[name] = self._attributes(child) or self.extension(child)
        self._extensions_into(out, extensions)
        return out

    def _sensor_report(self, element: etree._Element) -> dict[str, Any]:
        report = self._attributes(element)
        for name in _SENSOR_NUMBERS & report.keys():
            report[name] = _number(report[name])
        for name in ("type", "exception"):
            if isinstance(report.get(name), str):
                report[name] = _bare("sensorReport", report[name])
        if "booleanValue" in report:
            report["booleanValue"] = report["booleanValue"].strip() in ("true", "1")
        return report
