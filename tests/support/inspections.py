"""Inspection test material: a minimal valid PDF written byte by byte, a lot to inspect, an
upload through the API."""

from __future__ import annotations

from tests.support.api import ApiHarness

GTIN = "09506000134352"
LOT = "LOT-INSP-1"


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
    with h.connect() as conn:
        conn.execute("INSERT INTO products (gtin, name) VALUES (%s, 'Vaccine')", (GTIN,))
        conn.execute("INSERT INTO lots (gtin, lot) VALUES (%s, %s)", (GTIN, LOT))
        if shipment:
            conn.execute(
                "INSERT INTO shipments (shipment_id, origin, destination) VALUES (%s, 'a', 'b')",
                (shipment,),
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
