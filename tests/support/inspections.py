"""Inspection test material: a minimal valid PDF written byte by byte, a lot to inspect, an
upload through the API."""

from __future__ import annotations

from tests.support.api import ApiHarness

GTIN = "09506000134352"
LOT = "LOT-INSP-1"
#: The lot's parties (seed_lot): its brand owner, the receiver of its shipment, the inspection
#: organisation the brand commissioned for it, and the auditors the brand engaged.
BRAND = "brand-insp"
BUYER = "buyer-insp"
INSPECTORS = "insp-co"
AUDITORS = "audit-co"


def minimal_pdf(text: str) -> bytes:
    """A small valid one-page PDF, written object by object with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def seed_lot(h: ApiHarness, shipment: str | None = "SHIP-INSP-1") -> None:
    """The lot of BRAND's product, shipped to BUYER (when ``shipment``), with INSPECTORS
    commissioned for it and AUDITORS engaged by BRAND."""
    with h.connect() as conn:
        conn.execute(
            "INSERT INTO organisations (org_id, name, kind) VALUES (%s, 'Brand', 'supplier'),"
            " (%s, 'Buyer', 'buyer'), (%s, 'Inspectors', 'inspection'),"
            " (%s, 'Auditors', 'audit')",
            (BRAND, BUYER, INSPECTORS, AUDITORS),
        )
        conn.execute(
            "INSERT INTO products (gtin, name, owner_org) VALUES (%s, 'Vaccine', %s)",
            (GTIN, BRAND),
        )
        conn.execute(
            "INSERT INTO lots (gtin, lot, supplier_org) VALUES (%s, %s, %s)", (GTIN, LOT, BRAND)
        )
        conn.execute(
            "INSERT INTO inspection_commissions (gtin, lot, client_org, inspection_org,"
            " created_by) VALUES (%s, %s, %s, %s, 'test')",
            (GTIN, LOT, BRAND, INSPECTORS),
        )
        conn.execute(
            "INSERT INTO audit_engagements (auditor_org, client_org) VALUES (%s, %s)",
            (AUDITORS, BRAND),
        )
        if shipment:
            conn.execute(
                "INSERT INTO shipments (shipment_id, origin, destination, shipper_org,"
                " receiver_org) VALUES (%s, 'a', 'b', %s, %s)",
                (shipment, BRAND, BUYER),
            )
        conn.commit()


def upload(h: ApiHarness, headers: dict[str, str], pdf: bytes, **fields: str):  # type: ignore[no-untyped-def]
    data = {"gtin": GTIN, "lot": LOT, "result": "pass", "summary": "all fine"} | fields
    return h.client.post(
        "/inspections",
        headers=headers,
        data=data,
        files={"report": ("report.pdf", pdf, "application/pdf")},
    )
