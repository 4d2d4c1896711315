"""The demo scenario, through the real pipeline: a vaccine lot shipped from a factory to a buyer.

`build_scenario(settings, schema=...)` does, against the running stack:

1. organisations (factory, carrier, buyer), a product with a 2-8 °C band, a lot, a shipment;
2. enrols two devices as an operator would (`tracehub devices enrol`: key, certificate, ledger
   record): a reefer logger and the dock scanner that reads RFID tags and records custody;
3. starts a gateway process (`python -m gateway`) writing into the given schema;
4. the devices sign and publish over MQTT (mutual TLS) a voyage of several days (demo/voyage.py):
   the reefer logger's temperature/humidity every 10 minutes from departure to arrival, with an
   hour above 8 °C during transshipment, uploaded on arrival (store and forward); the dock
   scanner's RFID reads and custody steps (commissioning, packing, shipping, receiving) at their
   times; each reading signed and hash-chained, under certificates valid from provisioning, the
   day before departure (decision 0026);
5. waits until every reading is stored, batched on IPFS and anchored on Fabric, and until the
   lot's cold-chain rule (demo/alerting.py) has raised its alert and tried its e-mail to the
   carrier's operations user;
6. captures the custody steps as EPCIS 2.0 ObjectEvents too and anchors their hashes (the
   alert's own event with them);
7. records an inspection report (a PDF on IPFS, its EPCIS event anchored);
8. records the buyer's order the shipment carries (DDP Valencia, in EUR), classifies the product
   (HS 3002.41, origin CN), loads the shipped duty/VAT table, and generates the commercial
   invoice, packing list and certificate-of-origin application (English and Spanish, PDF and
   JSON on IPFS, their hashes anchored with the events).
9. ends with a recall (demo/recall.py): the brand owner recalls the antigen lot the vaccine lot
   was made from; the buyer is alerted, its payment held, the lot's QR page shows the recall.

It returns the lot's identifiers (and the page URL). `python -m demo.scenario` (what
`make demo` runs) builds it into the public schema and prints the QR page URL.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs.broker import BrokerEndpoint, admit_gateway
from certs.pki import PKI
from certs.registry import LedgerRegistry
from commerce.customs.tariffs import import_rows, shipped_rows
from commerce.documents import store as trade_documents
from demo.alerting import LogisticsUser, add_alerting
from demo.recall import RecallResult, recall_input_lot
from demo.voyage import EXCURSION_C, INTERVAL, MIN_VOYAGE, Voyage, logger_series, plan
from ingest.epcis import capture_events
from ingest.epcis.anchoring import anchor_pending
from ingest.inspections import record_inspection
from ingest.schema import migrate
from tracehub import db
from tracehub import mqtt as tracehub_mqtt
from tracehub.config import PROJECT_DIR, Settings
from tracehub.envelope import reading_hash, sign_reading
from tracehub.errors import UnavailableError
from tracehub.gs1 import DIGITAL_LINK_BASE, build_uri, check_digit
from tracehub.ipfs_replicated import StackStore, content_store
from tracehub.ledger.local import connect_org, connect_registrar
from tracehub.reading import GENESIS_PREV, Reading

GTIN = "09506000134352"  # GS1's example GTIN: a demo must not claim a real product's number
PRODUCT_NAME = "CoolVax influenza vaccine, 10 x 0.5 ml"
FACTORY_GLN_BODY = "950600013400"  # GS1 example company prefix 9506000
BUYER_GLN_BODY = "950600013401"
#: The product's storage band's upper limit (°C), as in `products` below.
TEMP_MAX_C = 8.0
#: The excursion's length as the inspection report states it (7 readings 10 minutes apart).
EXCURSION_MINUTES = 70


class DemoError(UnavailableError):
    """The stack did not do what the scenario needs (a process exited, the broker refused a
    device, a wait timed out); the demo's only error."""


def gln(body: str) -> str:
    """A 13-digit GLN from its 12-digit body and computed check digit."""
    return body + str(check_digit(body))


@dataclass
class ScenarioResult:
    """What the scenario produced: enough for a test to open the lot's page and prove it."""

    gtin: str
    lot: str
    shipment_id: str
    logger_id: str
    scanner_id: str
    path: str
    url: str
    excursion_seqs: list[int]
    readings: int
    voyage: Voyage
    #: the carrier's operations user, who is told of the alert (e-mail, dashboard)
    logistics: LogisticsUser
    #: the alert the lot's rule raised: id, times, EPCIS event hash, e-mail deliveries
    alert: dict[str, Any]
    epcis_event_ids: list[str] = field(default_factory=list)
    inspection: dict[str, Any] = field(default_factory=dict)
    recall: RecallResult | None = None
    order_id: str = ""
    documents: list[dict[str, Any]] = field(default_factory=list)


def dsn_for(settings: Settings, schema: str | None) -> str:
    """The DSN, pinned to `schema` (libpq `options`) so a child process writes there."""
    if not schema:
        return settings.postgres_dsn
    return db.with_search_path(settings.postgres_dsn, schema)


class _Signer:
    """A device's key and certificate, signing a hash-chained series of readings."""

    def __init__(
        self, pki: PKI, registry: LedgerRegistry, device_id: str, provisioned: datetime
    ) -> None:
        self.id = device_id
        # Enrolled as `tracehub devices enrol` does (key, certificate, ledger record), with the
        # validity a device provisioned before departure has: from `provisioned` on. The
        # ledger record is made now; a reading is judged by its certificate's validity at its
        # own time, not by when the ledger heard of the device (decision 0026).
        issued = pki.enrol_simulated_device(device_id, not_before=provisioned)
        registry.enrol(issued.certificate_pem)
        cert_path, key_path = pki.device_paths(device_id)
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.key = key
        self.cert = pki.device(device_id)[0].certificate
        self.cert_path, self.key_path = cert_path, key_path
        self.prev = GENESIS_PREV
        self.seq = 0
        self.topic = f"tracehub/v1/devices/{device_id}/readings"

    def sign(self, ts: datetime, kind: str, data: dict[str, Any], loc: str | None) -> bytes:
        self.seq += 1
        reading = Reading(
            device=self.id,
            seq=self.seq,
            ts=ts,
            kind=kind,  # type: ignore[arg-type]
            data=data,
            prev=self.prev,
            loc=loc,
        )
        envelope = sign_reading(reading, self.key, self.cert)
        self.prev = reading_hash(envelope)
        return envelope


# The scenario's group is its own: the broker need not queue for it long after the scenario.
_BATCHING = ("--batch-readings", "200", "--batch-seconds", "1", "--session-expiry", "600")


@contextmanager
def _gateway(settings: Settings, schema: str | None, log: Path) -> Iterator[None]:
    """A gateway process of its own subscription group, writing into `schema`."""
    env = {
        **os.environ,
        "TRACEHUB_POSTGRES_DSN": dsn_for(settings, schema),
        # The alert e-mails go to the relay these settings name (a test's own server).
        "TRACEHUB_SMTP_HOST": settings.smtp.host,
        "TRACEHUB_SMTP_PORT": str(settings.smtp.port),
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    group = f"scenario-{secrets.token_hex(4)}"
    # The process's own broker identities (the broker takes a certificate's CN as client id).
    admit_gateway(PKI(settings.pki_dir), BrokerEndpoint.of(settings), group)
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--name", group, "--group", group, *_BATCHING],
        cwd=PROJECT_DIR,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        # The broker drops what reaches a group before its first subscription: publish only
        # once the gateway has logged the broker's SUBACK.
        subscribed = f"subscribed as group {group}".encode()
        deadline = time.monotonic() + 60
        while subscribed not in log.read_bytes():
            if process.poll() is not None:
                raise DemoError(f"the gateway exited at start; see {log}")
            if time.monotonic() > deadline:
                raise DemoError(f"the gateway did not subscribe within 60 s; see {log}")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        # The group is used once: end its broker session now. Left to expire, the broker would
        # queue a copy of every reading for it meanwhile, and Mosquitto 2.0 never expires a
        # session that was disconnected when the broker restarted (docs/acknowledgement.md).
        left = subprocess.run(
            [sys.executable, "-m", "gateway", "--name", group, "--leave"],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if left.returncode != 0:
            print(f"scenario: gateway {group} could not leave its group; see {log}")


def _publish(settings: Settings, signer: _Signer, envelopes: list[bytes]) -> None:
    """Publish with QoS 1 as the device (its own certificate), waiting for every PUBACK."""
    client = tracehub_mqtt.tls_client(
        signer.id,  # the broker takes the certificate's CN as the client id
        ca_file=settings.pki_dir / "ca-bundle.pem",
        cert_file=signer.cert_path,
        key_file=signer.key_path,
    )
    connected = threading.Event()

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            connected.set()

    client.on_connect = on_connect
    client.connect(settings.mqtt_host, settings.mqtt_tls_port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(15):
            raise DemoError(f"MQTT broker refused device {signer.id}")
        infos = [client.publish(signer.topic, envelope, qos=1) for envelope in envelopes]
        for info in infos:
            info.wait_for_publish(15)
    finally:
        client.disconnect()
        client.loop_stop()


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def _setup_trace(conn: db.Connection, lot: str, shipment_id: str, voyage: Voyage) -> None:
    shipped, delivered = voyage.departed, voyage.received
    orgs = [
        ("coolvax-sz", "CoolVax Biologics (Shenzhen)", "supplier", "CN"),
        ("oceanic-reefer", "Oceanic Reefer Lines", "logistics", "SG"),
        ("farmacia-central", "Farmacia Central S.A.", "buyer", "ES"),
    ]
    for org in orgs:
        conn.execute(
            "INSERT INTO organisations (org_id, name, kind, country) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (org_id) DO NOTHING",
            org,
        )
    # The sites, as location master data: the public page shows each journey step's city and
    # country (the brand owner's default); the sites themselves only if it publishes them.
    sites = [
        (gln(FACTORY_GLN_BODY), "coolvax-sz", "CoolVax Shenzhen plant", "Shenzhen", "CN"),
        (gln(BUYER_GLN_BODY), "farmacia-central", "Farmacia Central warehouse", "Valencia", "ES"),
    ]
    for site in sites:
        conn.execute(
            "INSERT INTO locations (gln, org_id, name, city, country_code)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (gln) DO NOTHING",
            site,
        )
    conn.execute(
        "INSERT INTO products (gtin, name, description, owner_org, temp_min_c, temp_max_c,"
        " humidity_min, humidity_max) VALUES (%s, %s, %s, 'coolvax-sz', 2, 8, 30, 70)"
        " ON CONFLICT (gtin) DO NOTHING",
        (GTIN, PRODUCT_NAME, "Store refrigerated at 2-8 °C. Do not freeze."),
    )
    conn.execute(
        "INSERT INTO lots (gtin, lot, supplier_org, produced_on, expires_on, quantity)"
        " VALUES (%s, %s, 'coolvax-sz', %s, %s, 2400)",
        (
            GTIN,
            lot,
            voyage.commissioned.date(),
            (voyage.commissioned + timedelta(days=540)).date(),
        ),
    )
    conn.execute(
        "INSERT INTO shipments (shipment_id, origin, destination, state, shipper_org,"
        " receiver_org, carrier_org, shipped_at, delivered_at)"
        " VALUES (%s, %s, %s, 'delivered', 'coolvax-sz', 'farmacia-central', 'oceanic-reefer',"
        " %s, %s)",
        (
            shipment_id,
            gln(FACTORY_GLN_BODY),
            gln(BUYER_GLN_BODY),
            shipped,
            delivered,
        ),
    )
    conn.execute(
        "INSERT INTO shipment_lots (shipment_id, gtin, lot, sscc, quantity)"
        " VALUES (%s, %s, %s, %s, 2400)",
        (shipment_id, GTIN, lot, _sscc(lot)),
    )


def _sscc(lot: str) -> str:
    body = "0" + "9506000" + str(int.from_bytes(lot.encode(), "big") % 10**9).zfill(9)
    return body + str(check_digit(body))


def _readings(
    logger: _Signer, scanner: _Signer, voyage: Voyage
) -> tuple[list[bytes], list[bytes], list[int], list[dict[str, Any]]]:
    """The logger's series (with the excursion) and the scanner's reads and custody events,
    each signed at its time on the voyage."""
    factory, buyer = gln(FACTORY_GLN_BODY), gln(BUYER_GLN_BODY)
    logged: list[bytes] = []
    excursion: list[int] = []
    for point in logger_series(voyage):
        data = {"temperature_c": point.temperature_c, "humidity_pct": point.humidity_pct}
        logged.append(logger.sign(point.ts, "environment", data, None))
        if point.above(TEMP_MAX_C):
            excursion.append(logger.seq)
    epc = "3074257BF7194E4000001A85"  # SGTIN-96 of a case (hex, as readers report it)
    v = voyage
    commissioning = _custody("commissioning", "active", "CoolVax Shenzhen, line 2")
    packing = _custody("packing", "in_progress", "CoolVax Shenzhen, cold room")
    steps: list[tuple[datetime, str, dict[str, Any], str]] = [
        (v.commissioned, "event", commissioning, factory),
        (v.packed, "event", packing, factory),
        (v.dock_read, "rfid", _tag(epc, 1, -52.5, "Shenzhen dock 3"), factory),
        (v.departed, "event", _custody("shipping", "in_transit", "Shenzhen dock 3"), factory),
        (v.arrival_read, "rfid", _tag(epc, 2, -49.0, "Valencia dock 1"), buyer),
        (v.received, "event", _custody("receiving", "in_progress", "Farmacia Central"), buyer),
    ]
    scanned = [scanner.sign(ts, kind, data, loc) for ts, kind, data, loc in steps]
    custody = [
        {"ts": ts, "data": data, "loc": loc} for ts, kind, data, loc in steps if kind == "event"
    ]
    return logged, scanned, excursion, custody


def _custody(biz_step: str, disposition: str, where: str) -> dict[str, Any]:
    return {"bizStep": biz_step, "disposition": disposition, "where": where}


def _tag(epc: str, antenna: int, rssi: float, reader: str) -> dict[str, Any]:
    return {"epc": epc, "antenna": antenna, "rssi_dbm": rssi, "read_count": 2, "reader": reader}


def _epcis_events(lot: str, custody: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The custody steps as EPCIS 2.0 ObjectEvents on the lot (LGTIN quantity)."""
    lgtin = build_uri(DIGITAL_LINK_BASE, GTIN, lot)
    events = []
    for step in custody:
        ts: datetime = step["ts"]
        events.append(
            {
                "type": "ObjectEvent",
                "eventTime": ts.isoformat().replace("+00:00", "Z"),
                "eventTimeZoneOffset": "+00:00",
                "epcList": [],
                "quantityList": [{"epcClass": lgtin, "quantity": 2400, "uom": "H87"}],
                "action": "ADD" if step["data"]["bizStep"] == "commissioning" else "OBSERVE",
                "bizStep": step["data"]["bizStep"],
                "disposition": step["data"]["disposition"],
                "readPoint": {"id": f"{DIGITAL_LINK_BASE}/414/{step['loc']}"},
                "bizLocation": {"id": f"{DIGITAL_LINK_BASE}/414/{step['loc']}"},
            }
        )
    return events


def report_pdf(lines: list[str]) -> bytes:
    """A one-page PDF 1.4 with `lines` of Helvetica text (ASCII), offsets computed exactly."""
    text = (
        "BT /F1 12 Tf 72 760 Td 16 TL "
        + " ".join(
            "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '"
            for line in lines
        )
        + " ET"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text.encode("ascii")),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


#: The order's price per pack of the lot (EUR minor units) and the lot's quantity.
UNIT_PRICE_EUR_MINOR = 1150
QUANTITY = 2400


def _order_and_documents(
    conn: db.Connection, ipfs: StackStore, lot: str, shipment_id: str
) -> tuple[str, list[dict[str, Any]]]:
    """The buyer's order the shipment carries, the product's classification, the rate table,
    and the three trade documents of the shipment (the caller commits)."""
    import_rows(conn, shipped_rows())
    conn.execute("UPDATE products SET hs_code = '300241' WHERE gtin = %s", (GTIN,))
    conn.execute("UPDATE lots SET origin_country = 'CN' WHERE gtin = %s AND lot = %s", (GTIN, lot))
    total = UNIT_PRICE_EUR_MINOR * QUANTITY
    row = conn.execute(
        "INSERT INTO orders (buyer_org, supplier_org, idempotency_key, currency, incoterm,"
        " named_place, total_minor, settlement_currency, settlement_minor, state, created_by)"
        " VALUES ('farmacia-central', 'coolvax-sz', %s, 'EUR', 'DDP', 'Valencia', %s, 'EUR',"
        " %s, 'delivered', 'scenario') RETURNING order_id::text",
        (f"scenario-{shipment_id}", total, total),
    ).fetchone()
    assert row is not None
    order_id = str(row[0])
    conn.execute(
        "INSERT INTO order_lines (order_id, line_no, gtin, quantity, unit_price_minor)"
        " VALUES (%s, 1, %s, %s, %s)",
        (order_id, GTIN, QUANTITY, UNIT_PRICE_EUR_MINOR),
    )
    conn.execute(
        "INSERT INTO order_shipments (order_id, shipment_id) VALUES (%s, %s)",
        (order_id, shipment_id),
    )
    documents = [
        trade_documents.issue(
            conn, ipfs, shipment_id=shipment_id, kind=kind, actor="scenario", org="coolvax-sz"
        ).to_dict()
        for kind in ("commercial_invoice", "packing_list", "certificate_of_origin")
    ]
    return order_id, documents


def _capture_and_anchor(
    settings: Settings,
    connect: Callable[[], db.Connection],
    events: list[dict[str, Any]],
    lot: str,
    shipment_id: str,
    voyage: Voyage,
) -> tuple[list[str], dict[str, Any], str, list[dict[str, Any]]]:
    """Capture the custody EPCIS events, record the inspection (its PDF on IPFS, its event
    captured), the order and its trade documents, then seal and anchor every pending event
    batch on the ledger."""
    with connect() as conn:
        captured = capture_events(conn, events, source="scenario")
        conn.commit()
    with content_store(settings) as ipfs, connect_org(settings.fabric, 1) as gateway:
        pdf = report_pdf(
            [
                "TraceHub demo - inspection report",
                f"Product: {PRODUCT_NAME} (GTIN {GTIN})",
                f"Lot: {lot}   Shipment: {shipment_id}",
                "Visual check of cartons and seals: intact.",
                f"Temperature log reviewed ({voyage.duration.total_seconds() / 3600:.0f} h at sea):"
                f" one excursion to {EXCURSION_C} C for about {EXCURSION_MINUTES} min;",
                "stability data covers it (max 25 C for 72 h). Result: PASS.",
            ]
        )
        with connect() as conn:
            inspection = record_inspection(
                conn,
                ipfs,
                pdf=pdf,
                gtin=GTIN,
                lot=lot,
                shipment_id=shipment_id,
                inspector="inspector-demo",
                result="pass",
                summary="Seals intact; excursion assessed against stability data.",
            )
            conn.commit()
        with connect() as conn:
            order_id, documents = _order_and_documents(conn, ipfs, lot, shipment_id)
            conn.commit()
        network = gateway.get_network(settings.fabric.channel)
        anchor_pending(
            connect,
            ipfs,
            network.get_contract(settings.fabric.chaincode),
            block_lookup=network.get_contract("qscc"),
            channel=settings.fabric.channel,
        )
    return [c.event_id for c in captured], inspection.to_dict(), order_id, documents


def _alert_of(connect: Callable[[], db.Connection], rule_id: str) -> dict[str, Any]:
    """The rule's alert with its e-mail deliveries' states (as the hub recorded them)."""
    with connect() as conn:
        row = conn.execute(
            "SELECT alert_id::text, started_at, ended_at, event_hash, detail->>'epcis_event_id'"
            " FROM alerts WHERE rule_id = %s",
            (rule_id,),
        ).fetchone()
        assert row is not None
        emails = conn.execute(
            "SELECT change, target, state, attempts, last_error FROM alert_deliveries"
            " WHERE alert_id = %s AND channel = 'email' ORDER BY id",
            (row[0],),
        ).fetchall()
    return {
        "alert_id": row[0],
        "started_at": row[1],
        "ended_at": row[2],
        "event_hash": row[3],
        "event_id": row[4],
        "emails": [
            dict(zip(("change", "target", "state", "attempts", "last_error"), e, strict=True))
            for e in emails
        ],
    }


def build_scenario(
    settings: Settings,
    *,
    schema: str | None = None,
    base_url: str = "http://127.0.0.1:18000",
    log: Path | None = None,
    timeout: float = 120.0,
) -> ScenarioResult:
    """Build the whole scenario into `schema` (the connection's default when None)."""
    dsn = dsn_for(settings, schema)

    def connect() -> db.Connection:
        return db.connect(dsn)

    with connect() as conn:
        migrate(conn)
    tag = secrets.token_hex(3).upper()
    lot = f"CV{datetime.now(UTC):%y%m%d}-{tag}"
    shipment_id = f"SHP-{datetime.now(UTC):%y%m%d}-{tag}"
    pki = PKI(settings.pki_dir)
    # The voyage ends a little before now (the gateway refuses readings from the future) and
    # starts after the CAs became valid (the device CA, issued by the root, is the later).
    voyage = plan(datetime.now(UTC), pki.device_ca_certificate().not_valid_before_utc)
    if voyage.duration < MIN_VOYAGE:
        raise DemoError(
            f"the PKI's CAs are valid only since {voyage.provisioned:%Y-%m-%d %H:%M} UTC: too "
            f"recent for a voyage of at least {MIN_VOYAGE} (see docs/decisions/0026)"
        )
    with connect_registrar(settings.fabric) as registrar:
        network = registrar.get_network(settings.fabric.channel)
        registry = LedgerRegistry(network.get_contract(settings.fabric.chaincode))
        logger = _Signer(pki, registry, f"reefer-logger-{tag.lower()}", voyage.provisioned)
        scanner = _Signer(pki, registry, f"dock-scanner-{tag.lower()}", voyage.provisioned)
    with connect() as conn:
        _setup_trace(conn, lot, shipment_id, voyage)
        # The logger travels with the lot from departure to arrival; the scanner's steps are
        # the lot's from commissioning to receiving.
        assigned = [
            (logger.id, voyage.departed, voyage.arrived + INTERVAL),
            (scanner.id, voyage.commissioned, voyage.received + timedelta(hours=1)),
        ]
        for device, valid_from, valid_to in assigned:
            conn.execute(
                "INSERT INTO device_assignments (device_id, shipment_id, valid_from, valid_to)"
                " VALUES (%s, %s, %s, %s)",
                (device, shipment_id, valid_from, valid_to),
            )
        user = add_alerting(conn, gtin=GTIN, lot=lot, shipment_id=shipment_id, tag=tag)
        conn.commit()
    logged, scanned, excursion, custody = _readings(logger, scanner, voyage)
    total = len(logged) + len(scanned)
    log = log or settings.run_dir / "logs" / "scenario-gateway.log"

    def anchored() -> bool:
        with connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM readings r JOIN batches b USING (batch_id)"
                " WHERE r.device_id = ANY(%s) AND b.state = 'anchored'",
                ([logger.id, scanner.id],),
            ).fetchone()
        return bool(row and row[0] == total)

    def alerted() -> bool:
        """The rule's alert is open with its EPCIS event, its end recorded, and each of its
        e-mails tried at least once (delivered, or waiting for a relay to retry)."""
        with connect() as conn:
            row = conn.execute(
                "SELECT a.event_hash IS NOT NULL AND a.ended_at IS NOT NULL AND NOT EXISTS"
                " (SELECT 1 FROM alert_deliveries d WHERE d.alert_id = a.alert_id"
                "  AND d.channel = 'email' AND d.state = 'pending' AND d.attempts = 0)"
                " AND EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.alert_id = a.alert_id"
                "  AND d.channel = 'email')"
                " FROM alerts a WHERE a.rule_id = %s",
                (user.rule_id,),
            ).fetchone()
        return bool(row and row[0])

    with _gateway(settings, schema, log):
        _publish(settings, logger, logged)
        _publish(settings, scanner, scanned)
        _wait(anchored, timeout, f"{total} readings stored and anchored (gateway log {log})")
        _wait(alerted, 60, f"the alert of rule {user.rule_id} (gateway log {log})")
    event_ids, inspection, order_id, documents = _capture_and_anchor(
        settings, connect, _epcis_events(lot, custody), lot, shipment_id, voyage
    )
    alert = _alert_of(connect, user.rule_id)
    recall = recall_input_lot(
        settings,
        connect,
        lot=lot,
        shipment_id=shipment_id,
        made=voyage.commissioned,
        factory_gln=gln(FACTORY_GLN_BODY),
        base_url=base_url,
    )
    url = build_uri(base_url, GTIN, lot)
    return ScenarioResult(
        gtin=GTIN,
        lot=lot,
        shipment_id=shipment_id,
        logger_id=logger.id,
        scanner_id=scanner.id,
        path=url[len(base_url.rstrip("/")) :],
        url=url,
        excursion_seqs=excursion,
        readings=total,
        voyage=voyage,
        logistics=user,
        alert=alert,
        epcis_event_ids=event_ids,
        inspection=inspection,
        recall=recall,
        order_id=order_id,
        documents=documents,
    )


def main() -> int:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m demo.scenario", description=__doc__)
    parser.add_argument("--schema", default=None, help="database schema (default: public)")
    parser.add_argument("--base-url", default=settings.api.public_url)
    args = parser.parse_args()
    started = time.monotonic()
    result = build_scenario(settings, schema=args.schema, base_url=args.base_url)
    print(f"scenario: lot {result.lot} of GTIN {result.gtin}, shipment {result.shipment_id}")
    print(f"  devices {result.logger_id} (logger), {result.scanner_id} (dock scanner)")
    voyage = result.voyage
    print(
        f"  voyage {voyage.departed:%Y-%m-%d %H:%M} to {voyage.arrived:%Y-%m-%d %H:%M} UTC"
        f" ({voyage.duration}), logged every {INTERVAL.seconds // 60} min and uploaded on"
        " arrival"
    )
    print(
        f"  {result.readings} signed readings stored and anchored; excursion in readings "
        f"{result.excursion_seqs[0]}-{result.excursion_seqs[-1]} (up to {EXCURSION_C} °C > 8 °C)"
    )
    alert = result.alert
    print(
        f"  alert {alert['alert_id']} (temperature excursion from"
        f" {alert['started_at']:%Y-%m-%d %H:%M} UTC), EPCIS event {alert['event_hash']}"
    )
    for mail in alert["emails"]:
        status = mail["state"] if mail["state"] != "pending" else "queued, retrying"
        error = f" ({mail['last_error']})" if mail["last_error"] else ""
        print(f"    e-mail ({mail['change']}) to {mail['target']}: {status}{error}")
    if alert["emails"]:
        # The stack's mail relay (network/mail/mail.sh) keeps what it is given in a Maildir.
        maildir = settings.run_dir / "mail" / "new"
        print(f"    (the local mail relay keeps delivered e-mail in {maildir})")
    print(f"  EPCIS events captured and anchored: {len(result.epcis_event_ids)}")
    report = result.inspection
    print(f"  inspection report: {report['result']}, PDF sha256 {report['report_sha256']}")
    print(f"    on IPFS {report['report_cid']}, EPCIS event {report['event_hash']}")
    base = args.base_url.rstrip("/")
    print(f"  order {result.order_id} (DDP Valencia, EUR); trade documents, anchored:")
    for doc in result.documents:
        where = f"{base}/commerce/shipments/{result.shipment_id}/documents/file"
        print(f"    {doc['number']} ({', '.join(doc['languages'])}) sha256 {doc['pdf_sha256']}")
        print(f"      {where}?kind={doc['kind']}&version={doc['version']}&format=pdf")
        print(f"      proof {base}/proofs/events/{quote(doc['event_id'], safe='')}")
    print(
        "    (download as the shipper's or buyer's user, then:"
        " tracehub verify PROOF.json --document FILE.pdf)"
    )
    recall = result.recall
    if recall is not None:
        print(f"  recall {recall.recall_id} of antigen lot {recall.antigen_lot} (class I):")
        print(f"    affected lots {', '.join(recall.affected_lots)}")
        for org, relations in recall.parties.items():
            print(f"    notified {org} ({', '.join(relations)})")
        print(f"    {len(recall.alerts)} recall alerts; order {recall.order_id} payment "
              f"{recall.payment_state}; EPCIS event {recall.event_hash}")  # fmt: skip
    print(f"  built in {time.monotonic() - started:.0f} s")
    print()
    print(f"QR page: {result.url}")
    print(f"QR label: {args.base_url.rstrip('/')}/qr{result.path}.svg")
    if recall is not None:
        print(f"Trace page: {recall.trace_url}")
    user = result.logistics
    print(f"Dashboard (the alert): {base}/dashboard")
    print(f"  sign in as {user.username} / {user.password} (the carrier's operations user)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
