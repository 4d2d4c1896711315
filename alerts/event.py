"""An alert as an EPCIS 2.0 ObjectEvent with a GS1 sensor alert.

The event observes the shipment's lots (quantityList, GS1 Digital Link class URIs) and carries
one sensorReport whose `exception` is the CBV sensor alert type: ALARM_CONDITION when a
condition is breached (out of band, wrong place, custody gap), ERROR_CONDITION when the sensor
itself fails (silent). It is captured through tracehub.epcis, which hashes (CBV 2.0 event hash)
and anchors it like readings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from tracehub.gs1 import DIGITAL_LINK_BASE

# Measurement types outside the CBV's list are URIs of our own vocabulary.
VOCAB = "urn:tracehub:alert:"
_MEASUREMENT = {
    "temperature_excursion": "Temperature",
    "humidity_excursion": "RelativeHumidity",
    "sensor_silent": f"{VOCAB}sensor_silent",
    "unexpected_location": f"{VOCAB}unexpected_location",
    "custody_gap": f"{VOCAB}custody_gap",
    "sensor_fault": f"{VOCAB}sensor_fault",
}
#: Kinds that report the device failing rather than the goods at risk.
_DEVICE_KINDS = ("sensor_silent", "sensor_fault")
_UOM = {"temperature_excursion": "CEL", "humidity_excursion": "P1"}


def event_time(ts: datetime) -> str:
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def lot_class_uri(gtin: str, lot: str) -> str:
    """A lot as an EPC class: its GS1 Digital Link URI."""
    return f"{DIGITAL_LINK_BASE}/01/{gtin}/10/{quote(lot, safe='')}"


def alert_event(
    *,
    event_id: str,
    kind: str,
    started_at: datetime,
    lots: Sequence[tuple[str, str]],
    device_id: str | None,
    detail: Mapping[str, Any],
    location: str | None = None,
) -> dict[str, Any]:
    """The EPCIS ObjectEvent recording an alert (sensor_reporting, OBSERVE)."""
    report: dict[str, Any] = {
        "type": _MEASUREMENT[kind],
        "exception": "ERROR_CONDITION" if kind in _DEVICE_KINDS else "ALARM_CONDITION",
        "time": event_time(started_at),
    }
    if kind in _UOM:
        if isinstance(detail.get("value"), int | float):
            report["value"] = detail["value"]
        for src, dst in (("min", "minValue"), ("max", "maxValue")):
            if detail.get(src) is not None:
                report[dst] = detail[src]
        report["uom"] = _UOM[kind]
    else:
        report["stringValue"] = str(detail.get("summary", kind))
    if device_id:
        report["deviceID"] = f"urn:tracehub:device:{device_id}"
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventID": event_id,
        "eventTime": event_time(started_at),
        "eventTimeZoneOffset": "+00:00",
        "epcList": [],
        "quantityList": [{"epcClass": lot_class_uri(gtin, lot)} for gtin, lot in lots],
        "action": "OBSERVE",
        "bizStep": "sensor_reporting",
        "sensorElementList": [{"sensorReport": [report]}],
    }
    if location:
        event["readPoint"] = {"id": _location_uri(location)}
    return event


def _location_uri(loc: str) -> str:
    """A GLN becomes its Digital Link URI; read point URIs stay as they are."""
    if loc.isdigit() and len(loc) == 13:
        return f"{DIGITAL_LINK_BASE}/414/{loc}"
    return loc
