"""Validation of EPCIS 2.0 JSON-LD documents and events against GS1's JSON Schema.

The schema file is GS1's ``EPCIS-JSON-Schema.json`` (draft-07). All its references are local
(``#/definitions/...``), so the validator never touches the network; it is compiled once per
process. Where the file lives: the settings tree's ``epcis.schema`` (``$TRACEHUB_EPCIS_SCHEMA``,
else the copy of GS1's file shipped in ``tracehub/epcis/gs1/``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError, best_match  # type: ignore[import-untyped]

from tracehub.config import Settings
from tracehub.epcis.errors import EPCISValidationError

__all__ = ["DEFAULT_CONTEXT", "schema_path", "validate_document", "validate_event"]

#: The context an event gets when it arrives without one (EPCIS 2.0 requires @context).
DEFAULT_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
_lock = threading.Lock()
_validator: Draft7Validator | None = None


def schema_path() -> Path:
    """Where GS1's EPCIS JSON Schema is read from (the settings tree's ``epcis.schema``)."""
    return Settings.from_env().epcis.schema


def _compiled() -> Draft7Validator:
    global _validator
    with _lock:
        if _validator is None:
            schema = json.loads(schema_path().read_text(encoding="utf-8"))
            Draft7Validator.check_schema(schema)
            _validator = Draft7Validator(schema, format_checker=FormatChecker())
        return _validator


def _where(error: ValidationError, prefix: str) -> str:
    parts = [prefix] if prefix else []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    text = ".".join(parts).replace(".[", "[")
    return text or "$"


def _check(instance: Any, prefix: str) -> None:
    errors = list(_compiled().iter_errors(instance))
    if not errors:
        return
    # The deepest, most specific error names the field best; the schema's if/then chains make
    # the outermost errors say little ("is not valid under any of the given schemas").
    error = best_match(errors)
    while error.context:
        error = best_match(error.context)
    raise EPCISValidationError(error.message[:500], path=_where(error, prefix))


def validate_document(document: Any) -> None:
    """Check an EPCISDocument (or any top-level EPCIS JSON) against the schema."""
    if not isinstance(document, Mapping):
        raise EPCISValidationError("an EPCIS document must be a JSON object", path="$")
    _check(document, "")


def validate_event(event: Any, *, prefix: str = "event") -> None:
    """Check one event (carrying its own @context) against the schema."""
    if not isinstance(event, Mapping):
        raise EPCISValidationError("an event must be a JSON object", path=prefix)
    _check(event, prefix)
