"""A small recall world: a farm lot transformed into a product lot shipped to a buyer, with the
hub's tables (organisations, product, lots, shipment, a held-until-delivery order and its
authorized payment) and the EPCIS events (captured through the store, as the API would)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.epcis import capture_events
from tests.support.api import ApiHarness
from tests.support.tenancy import member
from tracehub.gs1 import check_digit

PREFIX = "9506000"


@dataclass(frozen=True)
class Chain:
    brand: str
    buyer: str
    carrier: str
    rival: str
    gtin_in: str
    gtin_out: str
    lot_in: str
    lot_out: str
    farm_gln: str
    buyer_gln: str
    shipment: str
    order: str
    payment: str
    event_ids: tuple[str, ...]

    @property
    def class_in(self) -> str:
        return f"urn:epc:class:lgtin:{PREFIX}.0{self.gtin_in[8:13]}.{self.lot_in}"

    @property
    def class_out(self) -> str:
        return f"urn:epc:class:lgtin:{PREFIX}.0{self.gtin_out[8:13]}.{self.lot_out}"

    def headers(self, h: ApiHarness, role: str, org: str | None) -> dict[str, str]:
        return member(h, role, org)


def _gtin(ref: str) -> str:
    body = "0" + PREFIX + ref
    return body + str(check_digit(body))


def _gln(ref: str) -> str:
    body = PREFIX + ref
    return body + str(check_digit(body))


def _sgln(gln: str) -> str:
    return f"urn:epc:id:sgln:{PREFIX}.{gln[7:12]}.0"


def build_chain(h: ApiHarness) -> Chain:
    """A fresh chain among fresh organisations (unique names: tests share the database)."""
    tag = secrets.token_hex(3)
    number = int(tag, 16) % 10000
    brand, buyer = h.organisation("supplier"), h.organisation("buyer")
    carrier, rival = h.organisation("logistics"), h.organisation("buyer")
    gtin_in, gtin_out = _gtin(f"1{number:04d}"), _gtin(f"2{number:04d}")
    farm, store = _gln(f"1{number:04d}"), _gln(f"2{number:04d}")
    lot_in, lot_out = f"F{tag}", f"P{tag}"
    shipment = f"S-{tag}"
    now = datetime.now(UTC)
    with h.connect() as conn:
        for gtin, name in ((gtin_in, "Romaine, field-harvested"), (gtin_out, "Salad mix 250 g")):
            conn.execute(
                "INSERT INTO products (gtin, name, owner_org) VALUES (%s, %s, %s)",
                (gtin, name, brand),
            )
        conn.execute(
            "INSERT INTO lots (gtin, lot, supplier_org) VALUES (%s, %s, %s), (%s, %s, %s)",
            (gtin_in, lot_in, brand, gtin_out, lot_out, brand),
        )
        conn.execute(
            "INSERT INTO organisation_identifiers (kind, value, org_id) VALUES ('gln', %s, %s)",
            (store, buyer),
        )
        conn.execute(
            "INSERT INTO locations (gln, org_id, name, city, country_code)"
            " VALUES (%s, %s, 'Green Acres farm', 'Salinas', 'US')",
            (farm, brand),
        )
        conn.execute(
            "INSERT INTO shipments (shipment_id, origin, destination, shipper_org, receiver_org,"
            " carrier_org) VALUES (%s, %s, %s, %s, %s, %s)",
            (shipment, _sgln(_gln(f"3{number:04d}")), _sgln(store), brand, buyer, carrier),
        )
        conn.execute(
            "INSERT INTO shipment_lots (shipment_id, gtin, lot, quantity) VALUES (%s, %s, %s, 40)",
            (shipment, gtin_out, lot_out),
        )
        order = conn.execute(
            "INSERT INTO orders (buyer_org, supplier_org, idempotency_key, currency, incoterm,"
            " total_minor, settlement_currency, settlement_minor, hold_until_delivery, state,"
            " created_by) VALUES (%s, %s, %s, 'USD', 'FOB', 5000, 'USD', 5000, true,"
            " 'shipped', 'test') RETURNING order_id::text",
            (buyer, brand, tag),
        ).fetchone()[0]
        payment = conn.execute(
            "INSERT INTO payments (order_id, method, provider, idempotency_key, amount_minor,"
            " currency, state) VALUES (%s, 'bank_transfer', 'manual', %s, 5000, 'USD',"
            " 'authorized') RETURNING payment_id::text",
            (order, f"pay-{tag}"),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO order_shipments (order_id, shipment_id) VALUES (%s, %s)", (order, shipment)
        )
        chain = Chain(
            brand, buyer, carrier, rival, gtin_in, gtin_out, lot_in, lot_out, farm, store,
            shipment, order, payment, (),
        )  # fmt: skip
        events = chain_events(chain, now - timedelta(hours=3))
        captured = capture_events(conn, events, source="test", org=brand)
        conn.commit()
    return Chain(**{**chain.__dict__, "event_ids": tuple(c.event_id for c in captured)})


def chain_events(c: Chain, start: datetime) -> list[dict[str, Any]]:
    """Harvest at the farm, transformation into the product lot, shipping to the buyer."""

    def at(hours: int) -> dict[str, str]:
        return {
            "eventTime": (start + timedelta(hours=hours)).isoformat(),
            "eventTimeZoneOffset": "+00:00",
        }

    despatch = f"urn:tracehub:shipment:{c.shipment}"
    return [
        {
            "type": "ObjectEvent", **at(0), "action": "ADD", "bizStep": "harvesting",
            "bizLocation": {"id": _sgln(c.farm_gln)},
            "quantityList": [{"epcClass": c.class_in, "quantity": 120, "uom": "KGM"}],
        },
        {
            "type": "TransformationEvent", **at(1), "bizStep": "transforming",
            "bizLocation": {"id": _sgln(c.farm_gln)},
            "inputQuantityList": [{"epcClass": c.class_in, "quantity": 100, "uom": "KGM"}],
            "outputQuantityList": [{"epcClass": c.class_out, "quantity": 400, "uom": "EA"}],
        },
        {
            "type": "ObjectEvent", **at(2), "action": "OBSERVE", "bizStep": "shipping",
            "bizLocation": {"id": _sgln(c.farm_gln)},
            "quantityList": [{"epcClass": c.class_out, "quantity": 40, "uom": "EA"}],
            "destinationList": [{"type": "owning_party", "destination": _sgln(c.buyer_gln)}],
            "bizTransactionList": [{"type": "desadv", "bizTransaction": despatch}],
        },
    ]  # fmt: skip
