"""The documented wrapper that lets GS1's public hash tool reproduce an anchored event hash.

A line of an event batch on IPFS is one event with its ``@context`` inside (docs/epcis.md). The
reference tool (``python -m epcis_event_hash_generator``, PyPI package epcis-event-hash-generator)
reads EPCIS *documents*: given the bare line it finds no event list, and an ``@context`` inside
an event is not where it looks for prefixes. This module writes the one-event EPCISDocument the
tool reads, and changes nothing the CBV 2.0 pre-hash depends on:

- the event's ``@context`` becomes the document's; term definitions that are JSON objects (type
  coercions) are left out, since the tool only reads prefix strings and crashes on objects;
- a prefix the event redefines although the EPCIS context protects it (``cbvmda``) is renamed
  in the event's keys: the pre-hash holds ``{namespace}local``, never the prefix;
- an event stored with ``ignoreFields`` (the capture document declared fields outside the hash)
  is written without those fields and without the declaration, which is what the hash rule does
  with them; ``keep_declaration=True`` writes the declaration at document level instead, for a
  version of the tool that implements it.

Usage: ``python -m tracehub.epcis.reference LINE_FILE [--keep-declaration] > event.jsonld``, then
``python -m epcis_event_hash_generator event.jsonld``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from tracehub.epcis.hashing import (
    IGNORE_KEY,
    epcis_context_document,
    expansion_context,
    hashable_context,
    without_ignored,
)

__all__ = ["reference_document"]


def _epcis_iri(term: str) -> Any:
    """The IRI the EPCIS 2.0 context gives ``term`` (a string, or a definition's ``@id``)."""
    document = epcis_context_document()
    definition = document["@context"].get(term)
    return definition.get("@id") if isinstance(definition, Mapping) else definition


def _protected_prefixes(context: Any) -> set[str]:
    """Inline prefixes the JSON-LD expansion refuses: they redefine a protected EPCIS context
    term with another IRI (a prefix given the EPCIS context's own IRI, like ``rdfs``, is fine)."""
    kept = expansion_context(context)
    items = context if isinstance(context, list) else [context]
    kept_items = kept if isinstance(kept, list) else [kept]
    out: set[str] = set()
    for item, after in zip(items, kept_items, strict=True):
        if isinstance(item, Mapping) and isinstance(after, Mapping):
            out |= {k for k in set(item) - set(after) if item[k] != _epcis_iri(k)}
    return out


def _rename(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {
            (new + k[len(old) :] if k.startswith(old + ":") else k): _rename(v, old, new)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rename(v, old, new) for v in value]
    return value


def reference_document(line: bytes | str, *, keep_declaration: bool = False) -> dict[str, Any]:
    """The EPCISDocument holding the event stored as ``line`` (see the module docstring)."""
    event = json.loads(line)
    if not isinstance(event, dict):
        raise ValueError("a stored event line is a JSON object")
    context = event.pop("@context", None)
    declared = event.get(IGNORE_KEY)
    if keep_declaration:
        event.pop(IGNORE_KEY, None)
    else:
        event = without_ignored(event, (), context)
    for prefix in sorted(_protected_prefixes(context)):
        event = _rename(event, prefix, f"x{prefix}")
        context = _rename(context, prefix, f"x{prefix}")
        context = [
            {(f"x{prefix}" if k == prefix else k): v for k, v in c.items()}
            if isinstance(c, Mapping)
            else c
            for c in (context if isinstance(context, list) else [context])
        ]
    document: dict[str, Any] = {
        "@context": hashable_context(context),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2000-01-01T00:00:00Z",
    }
    if keep_declaration and declared:
        document[IGNORE_KEY] = declared
    document["epcisBody"] = {"eventList": [event]}
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tracehub.epcis.reference",
        description="Wrap a stored EPCIS event line (from an IPFS event batch) in the "
        "EPCISDocument that epcis_event_hash_generator reads.",
    )
    parser.add_argument("line", help="a file holding the line, or - for standard input")
    parser.add_argument(
        "--keep-declaration",
        action="store_true",
        help="write the event's ignoreFields declaration at document level instead of "
        "leaving the declared fields out",
    )
    args = parser.parse_args(argv)
    if args.line == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(args.line, "rb") as handle:
            data = handle.read()
    document = reference_document(data.strip(b"\n"), keep_declaration=args.keep_declaration)
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
