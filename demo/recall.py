"""The demo's last act: the brand owner recalls an input lot, and the hub finds the vaccine lot
made from it, tells the buyer, holds its payment and puts the recall on the QR page.

`recall_input_lot` adds to a built scenario (demo/scenario.py): the antigen lot the vaccine lot
was made from (its commissioning and the transformation, as EPCIS events), the buyer's order of
the shipment with its authorized, held-until-delivery payment, then opens the recall as the
brand owner's quality manager would (ingest/genealogy/recalls.py, alerts/recalls.py), anchors
the new events (the recall's among them) and applies the payment release rule.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from alerts.recalls import alert_recall
from commerce.ledger import FabricRecords
from commerce.release import evaluate_release
from ingest.epcis import capture_events
from ingest.epcis.anchoring import anchor_pending
from ingest.genealogy.recalls import open_recall
from tracehub import db
from tracehub.config import Settings
from tracehub.gs1 import DIGITAL_LINK_BASE, build_uri, check_digit
from tracehub.ipfs_replicated import content_store
from tracehub.ledger.local import connect_org

__all__ = ["ANTIGEN_GTIN", "RecallResult", "recall_input_lot"]

ANTIGEN_BODY = "0950600013436"
ANTIGEN_GTIN = ANTIGEN_BODY + str(check_digit(ANTIGEN_BODY))
BRAND, BUYER = "coolvax-sz", "farmacia-central"


@dataclass(frozen=True)
class RecallResult:
    recall_id: str
    antigen_lot: str
    affected_lots: list[str]
    parties: dict[str, list[str]]
    alerts: list[str]
    order_id: str
    payment_state: str
    event_hash: str
    trace_url: str


def _events(antigen: str, vaccine: str, factory_gln: str, made: datetime) -> list[dict[str, Any]]:
    site = {"id": f"{DIGITAL_LINK_BASE}/414/{factory_gln}"}

    def at(offset: timedelta) -> dict[str, str]:
        return {
            "eventTime": (made + offset).isoformat(),
            "eventTimeZoneOffset": "+00:00",
        }

    return [
        {
            "type": "ObjectEvent", **at(timedelta(hours=-2)), "action": "ADD",
            "bizStep": "commissioning", "bizLocation": site,
            "quantityList": [{"epcClass": antigen, "quantity": 12, "uom": "LTR"}],
        },
        {
            "type": "TransformationEvent", **at(timedelta(hours=-1)),
            "bizStep": "transforming", "bizLocation": site,
            "inputQuantityList": [{"epcClass": antigen, "quantity": 1.2, "uom": "LTR"}],
            "outputQuantityList": [{"epcClass": vaccine, "quantity": 2400, "uom": "H87"}],
        },
    ]  # fmt: skip


def recall_input_lot(
    settings: Settings,
    connect: Callable[[], db.Connection],
    *,
    lot: str,
    shipment_id: str,
    made: datetime,
    factory_gln: str,
    base_url: str,
) -> RecallResult:
    """Record the antigen lot and the order, recall the antigen lot, anchor, hold."""
    antigen_lot = f"AG-{secrets.token_hex(3).upper()}"
    antigen = build_uri(DIGITAL_LINK_BASE, ANTIGEN_GTIN, antigen_lot)
    vaccine = build_uri(DIGITAL_LINK_BASE, "09506000134352", lot)
    with connect() as conn:
        conn.execute(
            "INSERT INTO products (gtin, name, owner_org) VALUES (%s, %s, %s)"
            " ON CONFLICT (gtin) DO NOTHING",
            (ANTIGEN_GTIN, "CoolVax influenza antigen, bulk", BRAND),
        )
        conn.execute(
            "INSERT INTO lots (gtin, lot, supplier_org) VALUES (%s, %s, %s)",
            (ANTIGEN_GTIN, antigen_lot, BRAND),
        )
        # The order the shipment carries (the scenario's, with its trade documents), or one of
        # its own when run alone; either way paid by an authorized payment that waits for
        # delivery, so the recall has a payment to hold.
        found = conn.execute(
            "SELECT order_id::text FROM order_shipments WHERE shipment_id = %s", (shipment_id,)
        ).fetchone()
        if found is None:
            row = conn.execute(
                "INSERT INTO orders (buyer_org, supplier_org, idempotency_key, currency,"
                " incoterm, total_minor, settlement_currency, settlement_minor, state,"
                " created_by) VALUES (%s, %s, %s, 'EUR', 'CIP', 1840000, 'EUR', 1840000,"
                " 'delivered', 'demo') RETURNING order_id::text",
                (BUYER, BRAND, f"demo-{antigen_lot}"),
            ).fetchone()
            assert row is not None
            order_id = str(row[0])
            conn.execute(
                "INSERT INTO order_shipments (order_id, shipment_id) VALUES (%s, %s)",
                (order_id, shipment_id),
            )
        else:
            order_id = str(found[0])
        conn.execute(
            "UPDATE orders SET hold_until_delivery = true WHERE order_id = %s", (order_id,)
        )
        conn.execute(
            "INSERT INTO payments (order_id, method, provider, idempotency_key, amount_minor,"
            " currency, state) SELECT order_id, 'bank_transfer', 'manual', %s,"
            " settlement_minor, settlement_currency, 'authorized' FROM orders"
            " WHERE order_id = %s",
            (f"demo-pay-{antigen_lot}", order_id),
        )
        capture_events(
            conn, _events(antigen, vaccine, factory_gln, made), source="scenario", org=BRAND
        )
        conn.commit()
        opened = open_recall(
            conn,
            brand_org=BRAND,
            opened_by="coolvax-quality",
            targets=[antigen],
            reason="Antigen bulk lot failed sterility retest",
            recall_class="I",
        )
        alerts = alert_recall(conn, opened, recall_class="I", reason="sterility")
        conn.commit()
    with content_store(settings) as ipfs, connect_org(settings.fabric, 1) as gateway:
        network = gateway.get_network(settings.fabric.channel)
        contract = network.get_contract(settings.fabric.chaincode)
        anchor_pending(
            connect,
            ipfs,
            contract,
            block_lookup=network.get_contract("qscc"),
            channel=settings.fabric.channel,
        )
        with connect() as conn:
            state = evaluate_release(conn, order_id, ledger=FabricRecords(contract), provider=None)
    return RecallResult(
        recall_id=opened.recall_id,
        antigen_lot=antigen_lot,
        affected_lots=[f"{g}/{x}" for g, x in opened.affected.lots],
        parties={org: sorted(rel) for org, rel in sorted(opened.affected.parties.items())},
        alerts=alerts,
        order_id=order_id,
        payment_state=state,
        event_hash=opened.event_hash,
        trace_url=f"{base_url.rstrip('/')}/trace/page?id={quote(antigen, safe='')}",
    )
