"""The CBV 2.0 hash of each GS1 example as the reference package's CLI computes it, in a fresh
process: an independent check of what TraceHub stores and anchors.

Two examples the package (1.9.3) cannot read; for them the CLI runs on a variant that it can read
and whose pre-hash strings are the original's by the CBV 2.0 rules (docs/decisions/0010):

- the rail example (``Example-TransactionEvents-2020_07_03y``): object term definitions in its
  context crash the package's prefix reader, and a bizTransaction without ``type`` crashes its
  list folding. The variant keeps only the string prefixes and gives that bizTransaction a type
  ``po``; the CLI's pre-hash string of that event, less ``type=<the po URI>``, is the original's.
- the transformation "all possible fields" example: its context declares ``cbvmda`` anew, a
  protected EPCIS term (JSON-LD expansion refuses it). The variant calls the prefix ``xcbvmda``
  everywhere; the pre-hash holds only ``{namespace}local``, so it must hash identically.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "epcis" / "examples"
XML_EXAMPLES = EXAMPLES.parent / "xml-examples"
PO_TYPE = "type=https://ref.gs1.org/cbv/BTT-po"
#: The inline prefix name GS1's transformation example redefines (protected in EPCIS 2.0).
PROTECTED_PREFIX = "cbvmda"


def events_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    body = document["epcisBody"]
    if document["type"] == "EPCISQueryDocument":
        return list(body["queryResults"]["resultsBody"]["eventList"])
    return list(body.get("eventList") or [body["event"]])


def package_cli(path: Path) -> tuple[list[str], list[str]]:
    """(hash URIs, pre-hash strings) from ``python -m epcis_event_hash_generator -p FILE``."""
    done = subprocess.run(
        [sys.executable, "-m", "epcis_event_hash_generator", "-p", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    hashes = [line for line in done.stdout.splitlines() if line.startswith("ni:///")]
    prehashes = done.stdout.split("\nPre-hash strings:\n", 1)[1].rstrip("\n").split("\n---\n")
    return hashes, prehashes


def _rename_prefix(value: Any, old: str, new: str) -> Any:
    """``old:x`` -> ``new:x`` in every key and string value."""
    if isinstance(value, dict):
        return {
            (new + k[len(old) :] if k.startswith(old + ":") else k): _rename_prefix(v, old, new)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rename_prefix(v, old, new) for v in value]
    if isinstance(value, str) and value.startswith(old + ":"):
        return new + value[len(old) :]
    return value


def readable_variant(document: dict[str, Any]) -> tuple[dict[str, Any], set[int]]:
    """A variant of ``document`` the package can read (an EPCISDocument), and the indexes of the
    events whose untyped bizTransactions were given the type ``po``."""
    events = json.loads(json.dumps(events_of(document)))
    context = document.get("@context")
    if isinstance(context, list):
        # string prefixes only (the package reads nothing else; it crashes on objects)
        context = [
            {k: v for k, v in c.items() if isinstance(v, str)} if isinstance(c, dict) else c
            for c in context
        ]
        if any(isinstance(c, dict) and PROTECTED_PREFIX in c for c in context):
            context = _rename_prefix(
                [
                    {("x" + k if k == PROTECTED_PREFIX else k): v for k, v in c.items()}
                    if isinstance(c, dict)
                    else c
                    for c in context
                ],
                PROTECTED_PREFIX,
                "x" + PROTECTED_PREFIX,
            )
            events = _rename_prefix(events, PROTECTED_PREFIX, "x" + PROTECTED_PREFIX)
    typed: set[int] = set()
    for index, event in enumerate(events):
        for element in event.get("bizTransactionList", []):
            if "type" not in element:
                element["type"] = "po"
                typed.add(index)
    variant = {
        "@context": context,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": document.get("creationDate", "2000-01-01T00:00:00Z"),
        "epcisBody": {"eventList": events},
    }
    return variant, typed


def reference_hashes(path: Path, workdir: Path) -> tuple[list[str], bool]:
    """The CLI's hash of each event of ``path``, and whether the package failed on the file
    itself (an EPCISQueryDocument is hashed as the EPCISDocument of its events: the CLI reads
    only those)."""
    document = json.loads(path.read_text())
    if document["type"] == "EPCISDocument":
        try:
            return package_cli(path)[0], False
        except subprocess.CalledProcessError:
            pass  # the package cannot read this file: hash its equivalent variant
    variant, typed = readable_variant(document)
    variant_path = workdir / path.name
    variant_path.write_text(json.dumps(variant))
    hashes, prehashes = package_cli(variant_path)
    assert len(hashes) == len(prehashes) == len(events_of(document))
    for index in typed:
        assert prehashes[index].count(PO_TYPE) == 1, prehashes[index]
        untyped = prehashes[index].replace(PO_TYPE, "")
        hashes[index] = f"ni:///sha-256;{hashlib.sha256(untyped.encode()).hexdigest()}?ver=CBV2.0"
    return hashes, document["type"] == "EPCISDocument"
