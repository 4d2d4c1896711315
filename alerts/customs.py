"""Customs clearance told through the alert channels: a hold for inspection opens an alert of
kind ``customs_hold`` on the shipment (standing on the step's anchored EPCIS event), a release
clears the shipment's open ones. Like alerts/recalls.py, the caller's transaction; commerce
records the steps themselves (commerce/customs/clearance.py)."""

from __future__ import annotations

from datetime import datetime

from alerts.store import announce, clear_alert, open_alert
from tracehub import db

__all__ = ["CUSTOMS_HOLD_KIND", "alert_clearance_step"]

CUSTOMS_HOLD_KIND = "customs_hold"


def alert_clearance_step(
    conn: db.Connection,
    *,
    shipment_id: str,
    step: str,
    at: datetime,
    note: str,
    event_hash: str,
) -> str | None:
    """Open (and announce) a hold's alert and return its id; on a release, clear the shipment's
    open hold alerts. Other steps change no alert."""
    if step == "held_for_inspection":
        alert_id = open_alert(
            conn,
            rule_id="customs",
            kind=CUSTOMS_HOLD_KIND,
            severity="warning",
            shipment_id=shipment_id,
            gtin=None,
            lot=None,
            device_id=None,
            started_at=at,
            detail={"summary": f"held by customs for inspection: {note}".rstrip(": ")},
            event_hash=event_hash,
        )
        announce(conn, alert_id, "opened")
        return alert_id
    if step == "released":
        for (alert_id,) in conn.execute(
            "SELECT alert_id::text FROM alerts WHERE shipment_id = %s AND kind = %s"
            " AND ended_at IS NULL",
            (shipment_id, CUSTOMS_HOLD_KIND),
        ).fetchall():
            clear_alert(conn, alert_id, at, "released by customs")
    return None
