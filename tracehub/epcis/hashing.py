"""The CBV 2.0 event hash (``ni:///sha-256;<hex>?ver=CBV2.0``) via epcis-event-hash-generator.

The package expands the JSON-LD document with pyld to resolve bare CBV values ("shipping" ->
``https://ref.gs1.org/cbv/BizStep-shipping``), so it needs the EPCIS context. We install a
document loader that serves the EPCIS 2.0 context from the package's own bundled copy (the
ratified context with its CBV sub-contexts inlined; ``../shared/epcis/epcis-context.jsonld``
refers to those sub-contexts by URL) and refuses every other URL: hashing never uses the network.
The package keeps module-global state (collected namespaces, the join string), so calls are
serialised and that state reset each time; otherwise an earlier document's prefixes would leak
into a later hash.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.resources
import json
import re
import threading
from collections.abc import Mapping
from typing import Any

from epcis_event_hash_generator import hash_generator, json_to_py
from pyld import jsonld  # type: ignore[import-untyped]

from tracehub.epcis.errors import EPCISValidationError

__all__ = [
    "HASH_URI",
    "document_hashes",
    "event_hash",
    "hash_hex",
    "hashable_context",
    "leaf_data",
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


def document_hashes(document: Mapping[str, Any]) -> list[str]:
    """The CBV 2.0 hash URI of each event of an EPCISDocument, in order."""
    document = {**document, "@context": hashable_context(document.get("@context"))}
    with _lock:
        jsonld.set_document_loader(_offline_loader)
        json_to_py._namespaces = {}  # why: module-global, grows across calls otherwise
        try:
            events = json_to_py.event_list_from_epcis_document_json(copy.deepcopy(dict(document)))
            prehashes = hash_generator.derive_prehashes_from_events(events, "")
        except jsonld.JsonLdError as exc:
            raise EPCISValidationError(
                f"JSON-LD context cannot be resolved offline: {exc}", path="@context"
            ) from exc
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            # e.g. the package fails on a bizTransaction without "type" (GS1's rail example).
            raise EPCISValidationError(
                f"the CBV 2.0 event hash cannot be computed for this event "
                f"(epcis-event-hash-generator: {type(exc).__name__}: {exc})",
                path="epcisBody.eventList",
            ) from exc
    if len(prehashes) != len(events[2]):
        raise EPCISValidationError("an event cannot be hashed (CBV 2.0 pre-hash failed)")
    hashes: list[str] = hash_generator.calculate_hashes_from_pre_hashes(prehashes, "sha256")
    return hashes


def event_hash(event: Mapping[str, Any]) -> str:
    """The CBV 2.0 hash URI of one event that carries its own ``@context``."""
    body = {k: v for k, v in event.items() if k != "@context"}
    document = {
        "@context": event.get("@context"),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2000-01-01T00:00:00Z",
        "epcisBody": {"eventList": [body]},
    }
    (uri,) = document_hashes(document)
    return uri


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
