"""Capture bodies in either binding (JSON-LD or XML), read into the one JSON-LD form stored.

The REST layer only dispatches on the request's content type; what a body means is decided here:
``application/ld+json`` / ``application/json`` is parsed as JSON, ``application/xml`` /
``text/xml`` (EPCIS 2.0, or 1.2 upgraded) through :mod:`tracehub.epcis.xml_binding`.
"""

from __future__ import annotations

import json
from typing import Any

from tracehub.epcis.errors import EPCISValidationError
from tracehub.epcis.xml_binding import parse_xml_document

__all__ = ["XML_TYPES", "is_xml", "read_capture_body"]

XML_TYPES = ("application/xml", "text/xml")


def is_xml(content_type: str | None) -> bool:
    """Whether a Content-Type (or Accept entry) names XML."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in XML_TYPES


def read_capture_body(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """The capture document as JSON-LD; raises :class:`EPCISValidationError` (400)."""
    if is_xml(content_type):
        return parse_xml_document(raw).as_jsonld()
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise EPCISValidationError(
            f"$: the body is not JSON: {exc} (send XML as application/xml)"
        ) from exc
    if not isinstance(document, dict):
        raise EPCISValidationError("$: an EPCIS document must be a JSON object")
    return document
