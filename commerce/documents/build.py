"""The three documents as structured data, named after the UN/CEFACT Cross Industry Invoice
(CII, D16B) and the UN/CEFACT Buy-Ship-Pay model, with the document type codes of UNTDID 1001.

What follows which standard (docs/decisions/0020-trade-documents-and-customs.md lists it too):
``ExchangedDocument.TypeCode`` UNTDID 1001 (380 commercial invoice, 271 packing list, 861
certificate of origin); party, product, price, quantity and summation names CII's; quantities
in UN/ECE Recommendation 20 unit codes (H87 piece); countries ISO 3166-1 alpha-2; currencies
ISO 4217; delivery terms Incoterms 2020 codes (UN/CEFACT Recommendation 5); product ids GTINs
(ISO 6523 scheme 0160); classification the WCO Harmonized System (listID "HS"); packages SSCCs
(GS1). Members prefixed ``th:`` are TraceHub's own (amount in words, version chain).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commerce import money
from commerce.documents.record import Party, Record
from commerce.documents.words import amount_in_words

KINDS = ("commercial_invoice", "packing_list", "certificate_of_origin")
TYPE_CODES = {"commercial_invoice": "380", "packing_list": "271", "certificate_of_origin": "861"}
_NAMES = {
    "commercial_invoice": "Commercial invoice",
    "packing_list": "Packing list",
    "certificate_of_origin": "Application for certificate of origin",
}
_ABBR = {"commercial_invoice": "CI", "packing_list": "PL", "certificate_of_origin": "CO"}


def document_number(shipment_id: str, kind: str, version: int) -> str:
    return f"{shipment_id}-{_ABBR[kind]}-v{version}"


def _party(p: Party | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {"ID": p.org_id, "Name": p.name, "PostalTradeAddress": {"CountryID": p.country}}


def _amount(minor: int, currency: str) -> dict[str, str]:
    return {"currencyID": currency, "value": str(money.to_major(minor, currency))}


def _product(line: dict[str, Any]) -> dict[str, Any]:
    return {
        "GlobalID": {"schemeID": "0160", "value": line["gtin"]},
        "Name": line["name"],
        "DesignatedProductClassification": {
            "ClassCode": {"listID": "HS", "value": line["hs_code"]}
        },
        "OriginTradeCountry": {"ID": line["origin"]},
    }


def build(
    kind: str,
    record: Record,
    *,
    version: int,
    issued_at: datetime,
    languages: list[str],
    supersedes: str | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """The document ``kind`` of ``record``, as a JSON-ready dict."""
    header = {
        "ID": document_number(record.shipment_id, kind, version),
        "TypeCode": TYPE_CODES[kind],
        "Name": _NAMES[kind],
        "IssueDateTime": issued_at.isoformat(),
        "LanguageID": languages,
        "th:version": version,
        "th:supersedes": supersedes,
        "th:correctionReason": reason or None,
    }
    agreement = {
        "SellerTradeParty": _party(record.seller),
        "BuyerTradeParty": _party(record.buyer),
        "BuyerOrderReferencedDocument": {"IssuerAssignedID": record.order_id},
        "ApplicableTradeDeliveryTerms": {
            "DeliveryTypeCode": record.incoterm,
            "RelevantTradeLocation": {"Name": record.named_place},
        },
    }
    delivery = {
        "RelatedSupplyChainConsignment": {
            "ID": record.shipment_id,
            "CarrierTradeParty": _party(record.carrier),
            "ShipFromTradeParty": {"ID": record.origin},
            "ShipToTradeParty": {"ID": record.destination},
        }
    }
    body: dict[str, Any] = {"ExchangedDocument": header}
    if kind == "commercial_invoice":
        body["SupplyChainTradeTransaction"] = _invoice(record, agreement, delivery, languages)
    elif kind == "packing_list":
        body["SupplyChainTradeTransaction"] = {
            "ApplicableHeaderTradeAgreement": agreement,
            "ApplicableHeaderTradeDelivery": delivery,
            "SpecifiedLogisticsPackage": _packages(record),
        }
    else:
        body["SupplyChainTradeTransaction"] = {
            "ApplicableHeaderTradeAgreement": agreement,
            "ApplicableHeaderTradeDelivery": delivery,
            "IncludedSupplyChainTradeLineItem": [
                {
                    "AssociatedDocumentLineDocument": {"LineID": str(line["line_no"])},
                    "SpecifiedTradeProduct": _product(line),
                    "SpecifiedLineTradeDelivery": {
                        "BilledQuantity": {"unitCode": "H87", "value": line["quantity"]}
                    },
                }
                for line in record.lines
            ],
            "InvoiceReferencedDocument": {
                "IssuerAssignedID": document_number(record.shipment_id, "commercial_invoice", 1)
            },
            "th:exportCountry": record.seller.country,
            "th:importCountry": record.buyer.country,
        }
    return body


def _invoice(
    record: Record, agreement: dict[str, Any], delivery: dict[str, Any], languages: list[str]
) -> dict[str, Any]:
    cur = record.currency
    items = []
    total = 0
    for line in record.lines:
        amount = line["quantity"] * line["unit_price_minor"]
        total += amount
        items.append(
            {
                "AssociatedDocumentLineDocument": {"LineID": str(line["line_no"])},
                "SpecifiedTradeProduct": _product(line),
                "SpecifiedLineTradeAgreement": {
                    "NetPriceProductTradePrice": {
                        "ChargeAmount": _amount(line["unit_price_minor"], cur)
                    }
                },
                "SpecifiedLineTradeDelivery": {
                    "BilledQuantity": {"unitCode": "H87", "value": line["quantity"]}
                },
                "SpecifiedLineTradeSettlement": {
                    "SpecifiedTradeSettlementLineMonetarySummation": {
                        "LineTotalAmount": _amount(amount, cur)
                    }
                },
            }
        )
    return {
        "IncludedSupplyChainTradeLineItem": items,
        "ApplicableHeaderTradeAgreement": agreement,
        "ApplicableHeaderTradeDelivery": delivery,
        "ApplicableHeaderTradeSettlement": {
            "InvoiceCurrencyCode": cur,
            "SpecifiedTradeSettlementHeaderMonetarySummation": {
                "LineTotalAmount": _amount(total, cur),
                "GrandTotalAmount": _amount(total, cur),
            },
            "th:amountInWords": {lang: amount_in_words(total, cur, lang) for lang in languages},
        },
    }


def _packages(record: Record) -> list[dict[str, Any]]:
    """One package per SSCC (lots without an SSCC together, ID null); contents from the
    SSCC's aggregation event where there is one, else from the shipment's lots."""
    by_sscc: dict[str | None, list[dict[str, Any]]] = {}
    for lot in record.lots:
        by_sscc.setdefault(lot["sscc"], []).append(lot)
    out = []
    for sscc, lots in by_sscc.items():
        package: dict[str, Any] = {
            "ID": {"schemeID": "SSCC", "value": sscc} if sscc else None,
            "IncludedItem": [
                {
                    "SpecifiedTradeProduct": {
                        "GlobalID": {"schemeID": "0160", "value": lot["gtin"]},
                        "IndividualTradeProductInstance": {"BatchID": lot["lot"]},
                        "OriginTradeCountry": {"ID": lot["origin"]},
                    },
                    "ItemQuantity": {"unitCode": "H87", "value": lot["quantity"]},
                }
                for lot in lots
            ],
            "th:contentsSource": "shipment record",
        }
        aggregated = record.packages.get(sscc or "")
        if aggregated is not None:
            package["th:contentsSource"] = f"aggregation event {aggregated['event_hash']}"
            package["th:childEPCs"] = aggregated["child_epcs"]
            package["th:childQuantityList"] = aggregated["child_quantities"]
        out.append(package)
    return out
