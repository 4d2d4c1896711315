"""A recall told through the alert channels: one alert of kind ``recall`` per affected lot the
hub knows and per affected shipment.

Each alert goes out like any other (alerts/store.py: MQTT, each party organisation's topic,
e-mail and webhook subscriptions, NOTIFY for the live streams), and commerce holds the payment
of every hold-until-delivery order shipping an affected lot or shipment until the alert is
resolved (commerce/release.py), as it does for an excursion.
"""

from __future__ import annotations

from datetime import UTC, datetime

from alerts.store import announce, open_alert
from ingest.genealogy.recalls import Opened
from tracehub import db

__all__ = ["RECALL_KIND", "alert_recall"]

RECALL_KIND = "recall"


def alert_recall(
    conn: db.Connection, opened: Opened, *, recall_class: str, reason: str
) -> list[str]:
    """Open and announce the recall's alerts (in the caller's transaction); returns their ids."""
    known = {
        (g, lot)
        for g, lot in conn.execute(
            "SELECT gtin, lot FROM lots WHERE gtin || '/' || lot = ANY(%s)",
            ([f"{g}/{lot}" for g, lot in opened.affected.lots],),
        ).fetchall()
    }
    detail = {
        "recall_id": opened.recall_id,
        "class": recall_class,
        "reason": reason,
        "event_id": opened.event_id,
        "event_hash": opened.event_hash,
    }
    now = datetime.now(UTC)
    targets: list[tuple[str | None, str | None, str | None]] = [
        (None, g, lot) for g, lot in sorted(known)
    ] + [(s, None, None) for s in opened.affected.shipments]
    ids = []
    for shipment_id, gtin, lot in targets:
        alert_id = open_alert(
            conn,
            rule_id=f"recall:{opened.recall_id}",
            kind=RECALL_KIND,
            severity="critical" if recall_class == "I" else "warning",
            shipment_id=shipment_id,
            gtin=gtin,
            lot=lot,
            device_id=None,
            started_at=now,
            detail=detail,
            event_hash=opened.event_hash,
        )
        announce(conn, alert_id, "opened")
        ids.append(alert_id)
    return ids
