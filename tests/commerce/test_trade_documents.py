"""Trade documents from the order and shipment: the structured data's names and codes, amounts
in words, PDFs with the buyer's language, anchoring through EPCIS and the ledger, `tracehub
verify --document` on a downloaded file (and its failure on one changed byte), corrections as
new versions that never change the old one."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote as urlquote

import psycopg
import pytest

from commerce.custody import sscc_of_uri
from commerce.documents.build import build
from commerce.documents.labels import languages_for
from commerce.documents.pdf import render
from commerce.documents.record import Party, Record, sscc_uri
from commerce.documents.words import amount_in_words, chinese_amount
from ingest.epcis import capture_events
from ingest.epcis.anchoring import anchor_pending
from tests.support.api import ApiHarness
from tests.support.commerce import GTIN_A, party_headers
from tests.support.customs import buyer_org, shipped_order
from tracehub.cli import main as tracehub
from tracehub.config import Settings
from tracehub.gs1 import DIGITAL_LINK_BASE, build_uri
from tracehub.ipfs import KuboClient
from tracehub.ledger.local import connect_org

SSCC = "095060001234567893"  # check digit valid (GS1 mod 10)


def test_amounts_in_words() -> None:
    assert amount_in_words(123456, "USD", "en") == (
        "one thousand, two hundred and thirty-four US dollars and 56/100"
    )
    assert (
        amount_in_words(123456, "EUR", "es") == "mil doscientos treinta y cuatro euros con 56/100"
    )
    assert amount_in_words(123456, "USD", "ar").startswith("ألف")
    assert "دولار أمريكي" in amount_in_words(123456, "USD", "ar")
    assert chinese_amount(123456, "CNY") == "人民币壹仟贰佰叁拾肆元伍角陆分"
    assert chinese_amount(100, "CNY") == "人民币壹元整"
    assert chinese_amount(100005, "CNY") == "人民币壹仟元零伍分"
    assert chinese_amount(10203, "USD") == "美元壹佰零贰元零叁分"
    assert chinese_amount(100000001 * 100, "CNY") == "人民币壹亿零壹元整"
    assert amount_in_words(1235, "JPY", "en") == "one thousand, two hundred and thirty-five JPY"


def test_sscc_uri_round_trips_through_the_custody_parser() -> None:
    uri = sscc_uri(SSCC)
    assert uri == "urn:epc:id:sscc:9506000.0123456789"
    assert sscc_of_uri(uri) == SSCC


def test_languages_follow_the_buyers_country() -> None:
    assert languages_for("ES") == ["en", "es"]
    assert languages_for("CN") == ["en", "zh"]
    assert languages_for("AE") == ["en", "ar"]
    assert languages_for("DE") == ["en"] and languages_for(None) == ["en"]


def _record() -> Record:
    return Record(
        shipment_id="SHP-1",
        order_id="6f1c0c9e-0000-4000-8000-000000000001",
        seller=Party("coolvax-sz", "CoolVax Biologics (Shenzhen)", "CN"),
        buyer=Party("farmacia", "Farmacia Central S.A.", "ES"),
        carrier=None,
        currency="USD",
        incoterm="DDP",
        named_place="Valencia",
        origin="urn:epc:id:sgln:9506000.00001.0",
        destination="urn:epc:id:sgln:9506000.00002.0",
        lines=[
            {
                "line_no": 1,
                "gtin": GTIN_A,
                "name": "Vaccine",
                "hs_code": "300241",
                "quantity": 10,
                "unit_price_minor": 1999,
                "origin": "CN",
            }
        ],
        lots=[{"gtin": GTIN_A, "lot": "L1", "sscc": SSCC, "quantity": 10, "origin": "CN"}],
    )


def test_structured_data_uses_un_cefact_names_and_codes() -> None:
    when = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    invoice = build(
        "commercial_invoice", _record(), version=1, issued_at=when, languages=["en", "es"]
    )
    head = invoice["ExchangedDocument"]
    assert (head["TypeCode"], head["ID"], head["LanguageID"]) == (
        "380",
        "SHP-1-CI-v1",
        ["en", "es"],
    )
    trade = invoice["SupplyChainTradeTransaction"]
    item = trade["IncludedSupplyChainTradeLineItem"][0]
    product = item["SpecifiedTradeProduct"]
    assert product["GlobalID"] == {"schemeID": "0160", "value": GTIN_A}
    assert product["DesignatedProductClassification"]["ClassCode"] == {
        "listID": "HS",
        "value": "300241",
    }
    assert item["SpecifiedLineTradeDelivery"]["BilledQuantity"] == {"unitCode": "H87", "value": 10}
    terms = trade["ApplicableHeaderTradeAgreement"]["ApplicableTradeDeliveryTerms"]
    assert terms["DeliveryTypeCode"] == "DDP"
    settlement = trade["ApplicableHeaderTradeSettlement"]
    total = settlement["SpecifiedTradeSettlementHeaderMonetarySummation"]["GrandTotalAmount"]
    assert total == {"currencyID": "USD", "value": "199.90"}
    assert settlement["th:amountInWords"]["es"].endswith("con 90/100")
    packing = build("packing_list", _record(), version=1, issued_at=when, languages=["en"])
    assert packing["ExchangedDocument"]["TypeCode"] == "271"
    (package,) = packing["SupplyChainTradeTransaction"]["SpecifiedLogisticsPackage"]
    assert package["ID"] == {"schemeID": "SSCC", "value": SSCC}
    origin = build("certificate_of_origin", _record(), version=1, issued_at=when, languages=["en"])
    assert origin["ExchangedDocument"]["TypeCode"] == "861"
    # The same document renders to the same bytes, in every supported language pair.
    for langs in (["en", "es"], ["en", "zh"], ["en", "ar"]):
        body = build("commercial_invoice", _record(), version=1, issued_at=when, languages=langs)
        pdf = render("commercial_invoice", body, langs, when)
        assert pdf.startswith(b"%PDF-") and pdf == render("commercial_invoice", body, langs, when)


def _aggregate(h: ApiHarness) -> str:
    """A packing event: the SSCC holds 10 of lot L1 (as a packing station would capture it)."""
    event = {
        "type": "AggregationEvent",
        "eventTime": "2026-12-01T08:00:00.000Z",
        "eventTimeZoneOffset": "+00:00",
        "parentID": sscc_uri(SSCC),
        "childEPCs": [],
        "childQuantityList": [
            {"epcClass": build_uri(DIGITAL_LINK_BASE, GTIN_A, "L1"), "quantity": 10}
        ],
        "action": "ADD",
        "bizStep": "packing",
    }
    with h.connect() as conn:
        (captured,) = capture_events(conn, [event], source="packing-station", org="sup-a")
        conn.commit()
    return captured.event_hash


@pytest.mark.timeout(300)
def test_documents_generated_anchored_verified_and_corrected(
    stack: Settings, h: ApiHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    supplier = party_headers(h, "supplier", "sup-a")
    _, buyer = buyer_org(h, "ES")
    order_id, shipment_id = shipped_order(h, buyer, supplier, sscc=SSCC)
    packed = _aggregate(h)
    issued = {}
    for kind in ("commercial_invoice", "packing_list", "certificate_of_origin"):
        reply = h.client.post(
            f"/commerce/shipments/{shipment_id}/documents", headers=supplier, json={"kind": kind}
        )
        assert reply.status_code == 201, reply.text
        issued[kind] = reply.json()
        assert issued[kind]["version"] == 1 and issued[kind]["languages"] == ["en", "es"]
    # only the shipper issues; the buyer reads
    refused = h.client.post(
        f"/commerce/shipments/{shipment_id}/documents",
        headers=buyer,
        json={"kind": "packing_list"},
    )
    assert refused.status_code == 403

    invoice = issued["commercial_invoice"]
    pdf = h.client.get(invoice["pdf_url"], headers=buyer)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert hashlib.sha256(pdf.content).hexdigest() == invoice["pdf_sha256"]
    assert pdf.headers["x-content-sha256"] == invoice["pdf_sha256"]
    data = h.client.get(invoice["json_url"], headers=buyer)
    assert hashlib.sha256(data.content).hexdigest() == invoice["json_sha256"]
    body = json.loads(data.content)
    assert body["ExchangedDocument"]["TypeCode"] == "380"
    assert body["SupplyChainTradeTransaction"]["ApplicableHeaderTradeAgreement"][
        "BuyerOrderReferencedDocument"
    ] == {"IssuerAssignedID": order_id}
    words = body["SupplyChainTradeTransaction"]["ApplicableHeaderTradeSettlement"][
        "th:amountInWords"
    ]
    assert words["en"] == "one hundred and ninety-nine US dollars and 90/100"
    packing = json.loads(h.client.get(issued["packing_list"]["json_url"], headers=buyer).content)[
        "SupplyChainTradeTransaction"
    ]["SpecifiedLogisticsPackage"]
    assert packing[0]["th:contentsSource"] == f"aggregation event {packed}"
    origin = json.loads(
        h.client.get(issued["certificate_of_origin"]["json_url"], headers=buyer).content
    )
    item = origin["SupplyChainTradeTransaction"]["IncludedSupplyChainTradeLineItem"][0]
    assert item["SpecifiedTradeProduct"]["OriginTradeCountry"] == {"ID": "CN"}

    # Anchor the events; the public event proof and the downloaded PDF verify with the CLI.
    with connect_org(stack.fabric, 1) as gateway, KuboClient(stack.ipfs_api) as ipfs:
        contract = gateway.get_network("trace").get_contract("tracehub")
        assert anchor_pending(h.connect, ipfs, contract)
    proof = h.client.get(f"/proofs/events/{urlquote(invoice['event_id'], safe='')}")
    assert proof.status_code == 200, proof.text
    proof_file, pdf_file = tmp_path / "proof.json", tmp_path / "invoice.pdf"
    proof_file.write_bytes(proof.content)
    pdf_file.write_bytes(pdf.content)
    capsys.readouterr()
    assert tracehub(["verify", str(proof_file), "--document", str(pdf_file)]) == 0
    assert "ok    document" in capsys.readouterr().out
    json_file = tmp_path / "invoice.json"
    json_file.write_bytes(data.content)
    assert tracehub(["verify", str(proof_file), "--document", str(json_file)]) == 0
    changed = bytearray(pdf.content)
    changed[len(changed) // 2] ^= 0x01
    pdf_file.write_bytes(bytes(changed))
    capsys.readouterr()
    assert tracehub(["verify", str(proof_file), "--document", str(pdf_file)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  document" in out and "does NOT verify" in out

    # A correction is a new version with a reason; the first stays as it was.
    again = h.client.post(
        f"/commerce/shipments/{shipment_id}/documents",
        headers=supplier,
        json={"kind": "commercial_invoice"},
    )
    assert again.status_code == 409 and "reason" in again.json()["detail"]
    corrected = h.client.post(
        f"/commerce/shipments/{shipment_id}/documents",
        headers=supplier,
        json={"kind": "commercial_invoice", "reason": "buyer's VAT number added"},
    )
    assert corrected.status_code == 201, corrected.text
    v2 = corrected.json()
    assert v2["version"] == 2 and v2["pdf_sha256"] != invoice["pdf_sha256"]
    v2_body = json.loads(h.client.get(v2["json_url"], headers=buyer).content)
    assert v2_body["ExchangedDocument"]["th:supersedes"] == f"{shipment_id}-CI-v1"
    first = h.client.get(invoice["pdf_url"], headers=buyer)
    assert hashlib.sha256(first.content).hexdigest() == invoice["pdf_sha256"]
    listed = h.client.get(f"/commerce/shipments/{shipment_id}/documents", headers=buyer).json()
    assert [(d["kind"], d["version"]) for d in listed] == [
        ("certificate_of_origin", 1),
        ("commercial_invoice", 1),
        ("commercial_invoice", 2),
        ("packing_list", 1),
    ]
    with h.connect() as conn, pytest.raises(psycopg.errors.RaiseException, match="never changed"):
        conn.execute("UPDATE trade_documents SET reason = 'silently' WHERE version = 1")
