"""The CBV 2.0 event hash (``ni:///sha-256;<hex>?ver=CBV2.0``) via epcis-event-hash-generator.

The package expands the JSON-LD document with pyld to resolve bare CBV values ("shipping" ->
``https://ref.gs1.org/cbv/BizStep-shipping``), so it needs the EPCIS context. We install a
document loader that serves the EPCIS 2.0 context from the package's own bundled copy (the
ratified context with its CBV sub-contexts inlined; GS1's published ``epcis-context.jsonld``
refers to those sub-contexts by URL) and refuses every other URL: hashing never uses the network.
The package keeps module-global state (collected namespaces, the join string), so calls are
serialised and that state reset each time; otherwise an earlier document's prefixes would leak
into a later hash.

Two of GS1's examples trip the package in steps that do not decide the pre-hash string; we run
the package's own steps around them (docs/decisions/0010): a document prefix that redefines a
protected EPCIS context term is withheld from the JSON-LD expansion only, and a list element
without a ``type`` (a bizTransaction) is folded like a typed one.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.resources
import json
import re
import threading
from collections.abc import Mapping
from typing import Any

from epcis_event_hash_generator import hash_generator, json_to_py
from epcis_event_hash_generator.json_xml_model_mismatch_correction import (
    deep_structure_correction,
)
from pyld import jsonld  # type: ignore[import-untyped]

from tracehub.epcis.errors import EPCISValidationError

__all__ = [
    "HASH_URI",
    "document_hashes",
    "document_prehashes",
    "epcis_context_document",
    "event_hash",
    "event_prehash",
    "expansion_context",
    "hash_hex",
    "hash_uri",
    "hashable_context",
    "ignore_declaration",
    "leaf_data",
    "single_event_document",
    "without_ignored",
]

HASH_URI = re.compile(r"ni:///sha-256;(?P<hex>[0-9a-f]{64})\?ver=CBV2\.0")
_CONTEXTS = {
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld": (
        "e532647e8eb371379b8b0e8602d8981c8566bc60f7351f22c76a5bc865962008.jsonld"
    ),
    "https://gs1.github.io/EPCIS/epcis-context.jsonld": (
        "14b10c9d3e92d35f577bfc610fe5ec15aa2941124987919389d7cd9998516861.jsonld"
    ),
}
_lock = threading.Lock()
_loaded: dict[str, Any] = {}


def _offline_loader(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    name = _CONTEXTS.get(url)
    if name is None:
        raise jsonld.JsonLdError(
            f"context {url} is not available offline",
            "jsonld.LoadDocumentError",
            code="loading document failed",
        )
    if name not in _loaded:
        text = (
            importlib.resources.files("epcis_event_hash_generator")
            .joinpath(name)
            .read_text(encoding="utf-8")
        )
        _loaded[name] = json.loads(text)
    return {
        "contentType": "application/ld+json",
        "contextUrl": None,
        "documentUrl": url,
        "document": copy.deepcopy(_loaded[name]),
    }


def hashable_context(context: Any) -> Any:
    """The document's ``@context`` as the package can read it: term definitions that are
    objects (type coercions such as ``{"@type": "xsd:integer"}``) dropped, prefixes kept.

    The package only reads prefix -> namespace strings from the context and crashes on object
    definitions (GS1's rail example has them). Coercions do not change the pre-hash string: they
    affect only how JSON-LD expansion types a value, and the package takes nothing from the
    expansion except CBV/GS1 vocabulary URIs.
    """
    if isinstance(context, list):
        return [hashable_context(item) for item in context]
    if isinstance(context, Mapping):
        return {k: v for k, v in context.items() if isinstance(v, str)}
    return context


def epcis_context_document() -> dict[str, Any]:
    """The EPCIS 2.0 JSON-LD context (the hash package's bundled copy; a fresh copy)."""
    document: dict[str, Any] = _offline_loader(next(iter(_CONTEXTS)))["document"]
    return document


@functools.cache
def _epcis_terms() -> frozenset[str]:
    """The terms the EPCIS 2.0 context defines (all ``@protected``: JSON-LD 1.1 forbids a
    document to redefine them differently)."""
    document = _offline_loader(next(iter(_CONTEXTS)))["document"]
    return frozenset(k for k in document["@context"] if not k.startswith("@"))


def expansion_context(context: Any) -> Any:
    """The context for the package's JSON-LD expansion: inline entries that reuse an EPCIS
    context term dropped (GS1's transformation example declares ``cbvmda`` anew, which PyLD
    refuses as a protected-term redefinition).

    The expansion only serves to find the GS1/CBV vocabulary IRIs (``https://ref.gs1.org/cbv``,
    ``https://gs1.org/voc``) that bare values stand for; a prefix mapped into the document's own
    namespace contributes none, so the set it finds, and thus the pre-hash, is unchanged. The
    prefix still reaches the package's namespace table from the full context.
    """
    protected = _epcis_terms()
    if isinstance(context, list):
        return [expansion_context(item) for item in context]
    if isinstance(context, Mapping):
        return {k: v for k, v in context.items() if k not in protected}
    return context


_TYPED_LISTS = ("bizTransactionList", "sourceList", "destinationList")


def _pad_untyped(py_event: tuple[str, str, list[Any]]) -> tuple[str, str, list[Any]]:
    """Give each element of a typed list that lacks ``type`` an empty second child.

    The package folds an element of these lists into the pair (type, value) and fails with an
    IndexError when the element has no type (GS1's rail example). An empty node ``("", "", [])``
    writes nothing into the pre-hash string (CBV 2.0: omitted fields are not added; the join
    string is empty), so the element contributes exactly ``bizTransaction=<value>``, sorted
    among the others as the package sorts typed ones.
    """
    name, value, children = py_event
    padded = [
        (key, text, [*grand, ("", "", [])])
        if key in _TYPED_LISTS and len(grand) == 1
        else (key, text, grand)
        for key, text, grand in children
    ]
    return name, value, padded


def _event_list(document: dict[str, Any]) -> tuple[str, str, list[Any]]:
    """The package's ``event_list_from_epcis_document_json`` with the two adjustments above."""
    context = document.get("@context")
    expanded = json_to_py._bare_string_pre_preocessing(
        {**document, "@context": expansion_context(context)}
    )
    if context is not None:
        json_to_py._collect_namespaces_from_jsonld_context(context)
    body = expanded["epcisBody"]
    event_list = body["eventList"] if "eventList" in body else [body["event"]]
    events = [
        deep_structure_correction(_pad_untyped(json_to_py._json_to_py(event)))
        for event in event_list
    ]
    return ("EventList", "", events)


#: The namespace a document binds a prefix of its choice to for ``<prefix>:ignoreFields`` (the
#: reference implementation's name for "fields a repository adds that are outside the hash").
IGNORE_NAMESPACE = "https://repository-x.example.com/"
IGNORE_KEY = "ignoreFields"


def _inline_prefixes(context: Any) -> dict[str, str]:
    """prefix -> namespace of the context's inline string definitions."""
    items = context if isinstance(context, list) else [context]
    out: dict[str, str] = {}
    for item in items:
        if isinstance(item, Mapping):
            out.update({k: v for k, v in item.items() if isinstance(v, str)})
    return out


def _check_fields(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise EPCISValidationError("must be a list of field names", path=where)
    for name in value:
        # why: the declaration lets a repository keep its own bookkeeping members out of the
        # hash; letting it name a standard field (epcList, eventTime) would let two different
        # events share one hash, which the hash exists to prevent
        if ":" not in name:
            raise EPCISValidationError(
                f"{name!r} is not an extension field (prefix:name or a URI); only those may "
                "be declared outside the event hash",
                path=where,
            )
    return tuple(value)


def ignore_declaration(document: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields a document declares outside the hash of its events: its ``ignoreFields``, or
    ``<prefix>:ignoreFields`` for a prefix its context binds to :data:`IGNORE_NAMESPACE`, at
    the top level or in ``epcisBody.queryResults`` (docs/epcis.md, "The event hash")."""
    prefixes = _inline_prefixes(document.get("@context"))
    keys = {IGNORE_KEY} | {
        f"{p}:{IGNORE_KEY}" for p, u in prefixes.items() if u == IGNORE_NAMESPACE
    }
    body = document.get("epcisBody")
    results = body.get("queryResults") if isinstance(body, Mapping) else None
    found: list[str] = []
    for holder, where in ((document, ""), (results, "epcisBody.queryResults.")):
        if isinstance(holder, Mapping):
            for key in sorted(keys & holder.keys()):
                found.extend(_check_fields(holder[key], where + key))
    return tuple(dict.fromkeys(found))


def _expand(name: str, prefixes: Mapping[str, str]) -> str:
    prefix, sep, local = name.partition(":")
    if sep and prefix in prefixes:
        return prefixes[prefix] + local
    return name


def without_ignored(
    event: Mapping[str, Any], fields: tuple[str, ...], context: Any
) -> dict[str, Any]:
    """``event`` less the members declared outside its hash: ``fields`` and the event's own
    ``ignoreFields`` (how TraceHub keeps a document's declaration with each stored event),
    matched by name or by expanded IRI; the declaration member itself is dropped too."""
    own = event.get(IGNORE_KEY)
    declared = fields + (_check_fields(own, IGNORE_KEY) if own is not None else ())
    prefixes = _inline_prefixes(context)
    names = set(declared) | {_expand(name, prefixes) for name in declared}
    return {
        k: v
        for k, v in event.items()
        if k != IGNORE_KEY and k not in names and _expand(k, prefixes) not in names
    }


def _apply_ignore(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document with every event stripped of the members declared outside its hash."""
    fields = ignore_declaration(document)
    body = document.get("epcisBody")
    if not isinstance(body, Mapping):
        return dict(document)
    context = document.get("@context")
    if isinstance(body.get("eventList"), list):
        events = [
            without_ignored(e, fields, e.get("@context", context)) if isinstance(e, Mapping) else e
            for e in body["eventList"]
        ]
        return {**document, "epcisBody": {**body, "eventList": events}}
    if isinstance(body.get("event"), Mapping):
        event = without_ignored(body["event"], fields, body["event"].get("@context", context))
        return {**document, "epcisBody": {**body, "event": event}}
    return dict(document)


def document_prehashes(document: Mapping[str, Any]) -> list[str]:
    """The CBV 2.0 pre-hash string of each event of an EPCISDocument, in order (members the
    document declares in ``ignoreFields`` left out, as the reference implementation does)."""
    document = _apply_ignore(document)
    document = {**document, "@context": hashable_context(document.get("@context"))}
    with _lock:
        jsonld.set_document_loader(_offline_loader)
        json_to_py._namespaces = {}  # why: module-global, grows across calls otherwise
        try:
            events = _event_list(copy.deepcopy(dict(document)))
            prehashes: list[str] = hash_generator.derive_prehashes_from_events(events, "")
        except jsonld.JsonLdError as exc:
            raise EPCISValidationError(
                f"JSON-LD context cannot be processed offline: {exc}", path="@context"
            ) from exc
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise EPCISValidationError(
                f"the CBV 2.0 event hash cannot be computed for this event "
                f"(epcis-event-hash-generator: {type(exc).__name__}: {exc})",
                path="epcisBody.eventList",
            ) from exc
    if len(prehashes) != len(events[2]):
        # the package logs and skips an event it cannot pre-hash; we refuse instead
        raise EPCISValidationError("an event cannot be hashed (CBV 2.0 pre-hash failed)")
    return prehashes


def document_hashes(document: Mapping[str, Any]) -> list[str]:
    """The CBV 2.0 hash URI of each event of an EPCISDocument, in order."""
    hashes: list[str] = hash_generator.calculate_hashes_from_pre_hashes(
        document_prehashes(document), "sha256"
    )
    return hashes


def single_event_document(event: Mapping[str, Any]) -> dict[str, Any]:
    """The EPCISDocument holding just ``event`` (its ``@context`` lifted to the document)."""
    body = {k: v for k, v in event.items() if k != "@context"}
    return {
        "@context": event.get("@context"),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2000-01-01T00:00:00Z",
        "epcisBody": {"eventList": [body]},
    }


def event_prehash(event: Mapping[str, Any]) -> str:
    """The CBV 2.0 pre-hash string of one event that carries its own ``@context``."""
    (prehash,) = document_prehashes(single_event_document(event))
    return prehash


def hash_uri(prehash: str) -> str:
    """``ni:///sha-256;<hex>?ver=CBV2.0`` of a pre-hash string."""
    return f"ni:///sha-256;{prehash_sha256(prehash)}?ver=CBV2.0"


def event_hash(event: Mapping[str, Any]) -> str:
    """The CBV 2.0 hash URI of one event that carries its own ``@context``."""
    return hash_uri(event_prehash(event))


def hash_hex(uri: str) -> str:
    """The 64 hex digits of a ``ni:///sha-256;...?ver=CBV2.0`` URI."""
    match = HASH_URI.fullmatch(uri)
    if match is None:
        raise ValueError(f"not a CBV 2.0 sha-256 event hash: {uri!r}")
    return match["hex"]


def leaf_data(uri: str) -> bytes:
    """The Merkle leaf data of an event: the 32 raw bytes of its CBV 2.0 SHA-256."""
    return bytes.fromhex(hash_hex(uri))


def prehash_sha256(prehash: str) -> str:
    """SHA-256 hex of a pre-hash string (what the package hashes)."""
    return hashlib.sha256(prehash.encode("utf-8")).hexdigest()
