"""Several companies on one hub, for the authorization tests (this module holds no tests).

Organisations (fixed ids; each test module has a schema of its own):

- ``sup``: supplier and brand owner (company prefix 9506000) of the product, shipper;
- ``buy``: the buyer, receiver of the shipment;
- ``car``: the carrier the shipper assigned;
- ``insp``: the inspection organisation ``sup`` commissioned for the lot;
- ``aud``: an auditing firm engaged by ``buy``;
- ``rival``: a company party to none of it.

`build_world` adds one set of business objects (a lot, an order with a payment, a shipment of
the lot with an SSCC, an alert, an alert rule, a subscription of ``car``, an RFQ and a quote, an
EPCIS event captured by ``sup`` with its capture job, an inspection) under a fresh tag, so a test
that changes or deletes one can ask for another.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from api.auth import Principal, create_user, issue_token
from ingest.epcis import capture_events
from tests.support.api import ApiHarness
from tests.support.inspections import minimal_pdf
from tracehub.gs1 import check_digit
from tracehub.ipfs import KuboClient

GTIN = "09506000134352"
COMPANY_PREFIX = "9506000"
ORGS = {
    "sup": "supplier",
    "buy": "buyer",
    "car": "logistics",
    "insp": "inspection",
    "aud": "audit",
    "rival": "supplier",
}
CAPTURER = "tenancy-sup-capturer"


@dataclass(frozen=True)
class World:
    tag: str
    lot: str
    order: str
    payment: str
    shipment: str
    sscc: str
    alert: str
    rule: str
    subscription: str
    rfq: str
    quote: str
    capture: str
    event_id: str
    inspection: str
    recall: str


def lot_class(lot: str) -> str:
    """The LGTIN EPC class of the product's lot."""
    return f"urn:epc:class:lgtin:{COMPANY_PREFIX}.0{GTIN[8:13]}.{lot}"


def sscc_epc(sscc: str) -> str:
    """The SSCC's EPC pure identity URI (company prefix 9506000)."""
    return f"urn:epc:id:sscc:{COMPANY_PREFIX}.{sscc[0]}{sscc[8:17]}"


def seed_parties(h: ApiHarness) -> None:
    """The organisations, the product, the prefix, the engagement (once per schema)."""
    with h.connect() as conn:
        for org, kind in ORGS.items():
            conn.execute(
                "INSERT INTO organisations (org_id, name, kind) VALUES (%s, %s, %s)",
                (org, org.upper(), kind),
            )
        conn.execute(
            "INSERT INTO products (gtin, name, owner_org, temp_min_c, temp_max_c)"
            " VALUES (%s, 'Vaccine', 'sup', 2, 8)",
            (GTIN,),
        )
        conn.execute(
            "INSERT INTO price_lists (supplier_org, gtin, currency, unit_price_minor)"
            " VALUES ('sup', %s, 'USD', 1999), ('rival', %s, 'USD', 1500)",
            (GTIN, GTIN),
        )
        conn.execute(
            "INSERT INTO organisation_identifiers (kind, value, org_id)"
            " VALUES ('company_prefix', %s, 'sup')",
            (COMPANY_PREFIX,),
        )
        conn.execute(
            "INSERT INTO audit_engagements (auditor_org, client_org) VALUES ('aud', 'buy')"
        )
        conn.commit()
        create_user(conn, CAPTURER, secrets.token_urlsafe(12), ["supplier"], org_id="sup")


def store_report() -> tuple[str, str]:
    """A PDF on IPFS: (CID, SHA-256)."""
    import hashlib

    pdf = minimal_pdf("tenancy")
    from tracehub.config import Settings

    with KuboClient(Settings.from_env().ipfs_api) as ipfs:
        return ipfs.add(pdf), hashlib.sha256(pdf).hexdigest()


def build_world(h: ApiHarness, report: tuple[str, str]) -> World:
    """One fresh set of business objects among the parties (see the module docstring)."""
    tag = uuid.uuid4().hex[:8]
    lot = f"L{tag}"
    body = "0" + COMPANY_PREFIX + str(int(tag, 16) % 10**9).zfill(9)
    sscc = body + str(check_digit(body))
    now = datetime.now(UTC)
    with h.connect() as conn:
        conn.execute(
            "INSERT INTO lots (gtin, lot, supplier_org) VALUES (%s, %s, 'sup')", (GTIN, lot)
        )
        order = conn.execute(
            "INSERT INTO orders (buyer_org, supplier_org, idempotency_key, currency, incoterm,"
            " total_minor, settlement_currency, settlement_minor, hold_until_delivery, state,"
            " created_by) VALUES ('buy', 'sup', %s, 'USD', 'FOB', 1999, 'USD', 1999, true,"
            " 'confirmed', 'test') RETURNING order_id::text",
            (tag,),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO order_lines (order_id, line_no, gtin, quantity, unit_price_minor)"
            " VALUES (%s, 1, %s, 1, 1999)",
            (order, GTIN),
        )
        payment = conn.execute(
            "INSERT INTO payments (order_id, method, provider, idempotency_key, amount_minor,"
            " currency, state) VALUES (%s, 'bank_transfer', 'manual', %s, 1999, 'USD',"
            " 'submitted') RETURNING payment_id::text",
            (order, f"pay-{tag}"),
        ).fetchone()[0]
        shipment = f"S-{tag}"
        conn.execute(
            "INSERT INTO shipments (shipment_id, origin, destination, shipper_org, receiver_org,"
            " carrier_org) VALUES (%s, 'urn:epc:id:sgln:9506000.00001.0', 'Rotterdam', 'sup',"
            " 'buy', 'car')",
            (shipment,),
        )
        conn.execute(
            "INSERT INTO shipment_lots (shipment_id, gtin, lot, sscc, quantity)"
            " VALUES (%s, %s, %s, %s, 10)",
            (shipment, GTIN, lot, sscc),
        )
        conn.execute(
            "INSERT INTO order_shipments (order_id, shipment_id) VALUES (%s, %s)", (order, shipment)
        )
        alert = conn.execute(
            "INSERT INTO alerts (rule_id, kind, severity, shipment_id, started_at)"
            " VALUES ('r', 'temperature_excursion', 'critical', %s, %s) RETURNING alert_id::text",
            (shipment, now),
        ).fetchone()[0]
        rule = f"rule-{tag}"
        conn.execute(
            "INSERT INTO alert_rules (rule_id, kind, shipment_id, params)"
            " VALUES (%s, 'custody_gap', %s, '{\"gap_s\": 60}')",
            (rule, shipment),
        )
        subscription = conn.execute(
            "INSERT INTO alert_subscriptions (channel, target, owner_org, created_by)"
            " VALUES ('email', %s, 'car', 'test') RETURNING subscription_id::text",
            (f"ops-{tag}@car.example",),
        ).fetchone()[0]
        rfq = conn.execute(
            "INSERT INTO rfqs (buyer_org, supplier_org, currency, lines, created_by)"
            " VALUES ('buy', 'sup', 'USD', %s, 'test') RETURNING rfq_id::text",
            (json.dumps([{"gtin": GTIN, "quantity": 1}]),),
        ).fetchone()[0]
        quote = conn.execute(
            "INSERT INTO quotes (rfq_id, buyer_org, supplier_org, currency, incoterm, named_place,"
            " valid_until, total_minor, created_by) VALUES (%s, 'buy', 'sup', 'USD', 'FOB', 'X',"
            " %s, 100, 'test') RETURNING quote_id::text",
            (rfq, now + timedelta(days=1)),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO quote_lines (quote_id, line_no, gtin, quantity, unit_price_minor)"
            " VALUES (%s, 1, %s, 1, 100)",
            (quote, GTIN),
        )
        conn.execute(
            "INSERT INTO inspection_commissions (gtin, lot, client_org, inspection_org, created_by)"
            " VALUES (%s, %s, 'sup', 'insp', 'test')",
            (GTIN, lot),
        )
        capture = f"cap-{tag}"
        conn.execute(
            "INSERT INTO epcis_capture_jobs (capture_id, source, running, success)"
            " VALUES (%s, %s, false, true)",
            (capture, f"api:{CAPTURER}"),
        )
        (captured,) = capture_events(
            conn,
            [storing_event(lot, now)],
            source=f"api:{CAPTURER}",
            capture_id=capture,
            org="sup",
        )
        cid, sha = report
        inspection = conn.execute(
            "INSERT INTO inspections (gtin, lot, shipment_id, inspector, result, report_sha256,"
            " report_cid, report_size, event_id, event_hash, inspector_org, commissioned_by,"
            " inspected_at) VALUES (%s, %s, %s, 'inspector', 'pass', %s, %s, 100, %s, %s, 'insp',"
            " 'sup', %s) RETURNING inspection_id::text",
            (
                GTIN,
                lot,
                shipment,
                sha,
                cid,
                captured.event_id,
                captured.event_hash,
                now - timedelta(days=1),  # before the alert: no inspection result since
            ),
        ).fetchone()[0]
        # A recall of the lot by its brand owner, affecting the buyer and the carrier.
        recall = conn.execute(
            "INSERT INTO recalls (brand_org, class, reason, targets, opened_by)"
            " VALUES ('sup', 'II', 'matrix', %s, 'test') RETURNING recall_id::text",
            ([f"lot:{GTIN}/{lot}"],),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO recall_parties (recall_id, org_id, relations)"
            " VALUES (%s, 'buy', '{receiver}'), (%s, 'car', '{carrier}')",
            (recall, recall),
        )
        conn.commit()
    return World(
        tag=tag,
        lot=lot,
        order=order,
        payment=payment,
        shipment=shipment,
        sscc=sscc,
        alert=alert,
        rule=rule,
        subscription=subscription,
        rfq=rfq,
        quote=quote,
        capture=capture,
        event_id=captured.event_id,
        inspection=inspection,
        recall=recall,
    )


def storing_event(lot: str, when: datetime, **extra: Any) -> dict[str, Any]:
    """An EPCIS ObjectEvent about the lot (its LGTIN class)."""
    return {
        "type": "ObjectEvent",
        "eventTime": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "bizStep": "storing",
        "epcList": [],
        "quantityList": [{"epcClass": lot_class(lot), "quantity": 1}],
        **extra,
    }


def document(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "epcisBody": {"eventList": list(events)},
    }


def member(h: ApiHarness, role: str, org: str | None) -> dict[str, str]:
    """Headers of a new user of ``org`` (None: of no organisation) holding ``role``. The token
    is issued directly (as /auth/token would), so the many users of these tests never meet a
    sign-in limit."""
    name = f"{role}-{org or 'none'}-{secrets.token_hex(4)}"
    with h.connect() as conn:
        user_id = create_user(conn, name, secrets.token_urlsafe(12), [role], org_id=org)
    principal = Principal(user_id, name, frozenset({role}), org)
    return {"Authorization": f"Bearer {issue_token(h.config.token_key, principal, 3600)}"}
