"""What a buyer sees of a lot: the stored lot (ingest/lot_view.py: product, lot, journey,
conditions, inspections) with its alerts as the public may see them (alerts/store.py), shaped
for the page and its JSON: the conditions' summary and where the proofs are.

Nothing here is to be trusted by the buyer: the page verifies every reading and event it shows
(api/static/verify.js) against the proof endpoints named in the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alerts.store import lot_alerts
from ingest.lot_view import LotRecord, load_lot
from tracehub.db import AsyncConnection
from tracehub.gs1 import DigitalLink


@dataclass
class LotView(LotRecord):
    """The public view of one lot (a JSON-ready dict via `to_json`)."""

    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        temps = [p["temperature_c"] for p in self.series]
        hums = [p["humidity_pct"] for p in self.series]
        return {
            "points": len(self.series),
            "first": self.series[0]["ts"] if self.series else None,
            "last": self.series[-1]["ts"] if self.series else None,
            "temperature_c": _range(temps),
            "humidity_pct": _range(hums),
            "band": self.band,
            "excursions": [e.__dict__ for e in self.excursions],
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "gs1": {"gtin": self.link.gtin, "lot": self.link.lot, "serial": self.link.serial},
            "product": self.product,
            "lot": self.lot,
            "shipments": self.shipments,
            "journey": self.journey,
            "sensors": {"summary": self.summary, "series": self.series},
            "inspections": self.inspections,
            "alerts": self.alerts,
            "recalls": self.recalls,
            "proofs": {
                "readings": "/proofs/readings/{device_id}/{seq}",
                "anchors": "/ledger/anchors/{batch_id}",
                "batches": sorted(
                    {
                        r["batch_id"]
                        for r in self.series
                        + self.journey
                        + [e["reading"] for e in self.journey if "reading" in e]
                        if r.get("batch_id")
                    }
                ),
            },
        }


def _range(values: list[float]) -> dict[str, float] | None:
    return {"min": min(values), "max": max(values)} if values else None


async def load_lot_view(conn: AsyncConnection, link: DigitalLink) -> LotView | None:
    """The lot's view, or None when the GTIN (or lot) is unknown."""
    record = await load_lot(conn, link)
    if record is None:
        return None
    shown = link.lot is not None and record.publication.get("show_alerts", True)
    alerts = await lot_alerts(conn, link.gtin, link.lot) if shown and link.lot else []
    return LotView(**vars(record), alerts=alerts)
