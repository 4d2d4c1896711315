"""A document's PDF, drawn with fpdf2 from its structured data and the labels.

Fonts: DejaVu Sans (Latin, Arabic) with WenQuanYi Zen Hei as the fallback for Chinese, from
the Debian packages fonts-dejavu-core and fonts-wqy-zenhei (scripts/install-system-deps.sh).
Arabic needs shaping and right-to-left ordering: fpdf2's text shaping (HarfBuzz, through
uharfbuzz) is switched on for documents that carry Arabic. The PDF's creation date is the
document's issue time, so the same document renders to the same bytes.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF

from commerce.documents.labels import label

# fontTools reports, for every PDF, the CJK font's bitmap tables it leaves out of the subset.
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)

FONT_DIR = Path("/usr/share/fonts/truetype")
LATIN = FONT_DIR / "dejavu" / "DejaVuSans.ttf"
CJK = FONT_DIR / "wqy" / "wqy-zenhei.ttc"


def _pdf(languages: list[str], issued_at: datetime) -> FPDF:
    pdf = FPDF(format="A4")
    pdf.set_creation_date(issued_at)
    pdf.set_producer("TraceHub")
    pdf.add_font("dejavu", fname=str(LATIN))
    pdf.add_font("wqy", fname=str(CJK))
    pdf.set_font("dejavu", size=9)
    pdf.set_fallback_fonts(["wqy"])
    if "ar" in languages:
        pdf.set_text_shaping(True)
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    return pdf


def _text(pdf: FPDF, text: str, size: float = 9, height: float = 5) -> None:
    pdf.set_font("dejavu", size=size)
    pdf.multi_cell(0, height, text, new_x="LMARGIN", new_y="NEXT")


def _party(p: dict[str, Any] | None) -> str:
    if not p:
        return "-"
    return f"{p['Name']} ({p['ID']}, {p['PostalTradeAddress']['CountryID'] or '-'})"


def _table(pdf: FPDF, rows: list[list[str]]) -> None:
    pdf.set_font("dejavu", size=8)
    with pdf.table(text_align="LEFT", line_height=4.5, first_row_as_headings=False) as table:
        for values in rows:
            row = table.row()
            for value in values:
                row.cell(value)


def render(kind: str, body: dict[str, Any], languages: list[str], issued_at: datetime) -> bytes:
    """The PDF bytes of document ``kind`` with data ``body``."""
    pdf = _pdf(languages, issued_at)
    head = body["ExchangedDocument"]
    trade = body["SupplyChainTradeTransaction"]
    agreement = trade["ApplicableHeaderTradeAgreement"]
    consignment = trade["ApplicableHeaderTradeDelivery"]["RelatedSupplyChainConsignment"]
    terms = agreement["ApplicableTradeDeliveryTerms"]
    _text(pdf, label(kind, languages), size=15, height=8)
    rows = [
        [label("document", languages), head["ID"]],
        [label("version", languages), str(head["th:version"])],
        [label("issued", languages), head["IssueDateTime"]],
        [label("order", languages), agreement["BuyerOrderReferencedDocument"]["IssuerAssignedID"]],
        [label("shipment", languages), consignment["ID"]],
        [
            label("incoterm", languages),
            f"{terms['DeliveryTypeCode']} {terms['RelevantTradeLocation']['Name']}".strip(),
        ],
        [
            label("route", languages),
            f"{consignment['ShipFromTradeParty']['ID']} -> {consignment['ShipToTradeParty']['ID']}",
        ],
        [label("seller", languages), _party(agreement["SellerTradeParty"])],
        [label("buyer", languages), _party(agreement["BuyerTradeParty"])],
    ]
    if head["th:supersedes"]:
        rows.append(
            [
                label("supersedes", languages),
                f"{head['th:supersedes']}: {head['th:correctionReason']}",
            ]
        )
    _table(pdf, rows)
    pdf.ln(4)
    if kind == "packing_list":
        _table(pdf, _packing_rows(trade, languages))
    else:
        _table(pdf, _line_rows(kind, trade, languages))
    pdf.ln(3)
    if kind == "commercial_invoice":
        settlement = trade["ApplicableHeaderTradeSettlement"]
        total = settlement["SpecifiedTradeSettlementHeaderMonetarySummation"]["GrandTotalAmount"]
        _text(pdf, f"{label('total', languages)}: {total['value']} {total['currencyID']}", 11, 6)
        for lang, words in settlement["th:amountInWords"].items():
            _text(pdf, f"{label('in_words', [lang])}: {words}")
    if kind == "certificate_of_origin":
        for lang in languages:
            _text(pdf, label("declaration", [lang]))
    pdf.ln(4)
    _text(pdf, label("anchored", languages[:1]), size=7, height=4)
    return bytes(pdf.output())


def _line_rows(kind: str, trade: dict[str, Any], languages: list[str]) -> list[list[str]]:
    invoice = kind == "commercial_invoice"
    head = ["line", "product", "hs", "origin", "quantity"]
    if invoice:
        head += ["unit_price", "amount"]
    rows = [[label(h, languages) for h in head]]
    for item in trade["IncludedSupplyChainTradeLineItem"]:
        product = item["SpecifiedTradeProduct"]
        row = [
            item["AssociatedDocumentLineDocument"]["LineID"],
            f"{product['Name']} (GTIN {product['GlobalID']['value']})",
            product["DesignatedProductClassification"]["ClassCode"]["value"],
            product["OriginTradeCountry"]["ID"] or "-",
            str(item["SpecifiedLineTradeDelivery"]["BilledQuantity"]["value"]),
        ]
        if invoice:
            price = item["SpecifiedLineTradeAgreement"]["NetPriceProductTradePrice"]
            total = item["SpecifiedLineTradeSettlement"][
                "SpecifiedTradeSettlementLineMonetarySummation"
            ]["LineTotalAmount"]
            row += [price["ChargeAmount"]["value"], total["value"]]
        rows.append(row)
    return rows


def _packing_rows(trade: dict[str, Any], languages: list[str]) -> list[list[str]]:
    rows = [[label(h, languages) for h in ("package", "product", "lot", "origin", "quantity")]]
    for package in trade["SpecifiedLogisticsPackage"]:
        sscc = package["ID"]["value"] if package["ID"] else "-"
        for item in package["IncludedItem"]:
            product = item["SpecifiedTradeProduct"]
            quantity = item["ItemQuantity"]["value"]
            rows.append(
                [
                    sscc,
                    f"GTIN {product['GlobalID']['value']}",
                    product["IndividualTradeProductInstance"]["BatchID"],
                    product["OriginTradeCountry"]["ID"] or "-",
                    "-" if quantity is None else str(quantity),
                ]
            )
    return rows
