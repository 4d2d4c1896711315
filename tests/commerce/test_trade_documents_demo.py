"""The demo scenario's order yields the three trade documents, anchored; `tracehub verify`
confirms a downloaded one against the ledger and refuses it with one byte changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo.scenario import build_scenario
from ingest.proofs import event_proof
from tests.support.db import connector, migrated_schema
from tracehub.cli import main as tracehub
from tracehub.config import Settings
from tracehub.ipfs import KuboClient

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_demo_documents_verify(
    stack: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with migrated_schema(stack.postgres_dsn) as schema:
        result = build_scenario(stack, schema=schema, log=tmp_path / "gw.log")
        assert [d["kind"] for d in result.documents] == [
            "commercial_invoice",
            "packing_list",
            "certificate_of_origin",
        ]
        assert all(d["languages"] == ["en", "es"] for d in result.documents)
        with connector(stack.postgres_dsn, schema)() as conn:
            proofs = {d["kind"]: event_proof(conn, d["event_id"]) for d in result.documents}
            body = conn.execute(
                "SELECT body FROM trade_documents WHERE kind = 'commercial_invoice'"
            ).fetchone()[0]
        assert all(p is not None for p in proofs.values())
        settlement = body["SupplyChainTradeTransaction"]["ApplicableHeaderTradeSettlement"]
        assert settlement["SpecifiedTradeSettlementHeaderMonetarySummation"][
            "GrandTotalAmount"
        ] == {"currencyID": "EUR", "value": "27600.00"}
        assert (
            settlement["th:amountInWords"]["es"] == "veintisiete mil seiscientos euros con 00/100"
        )
        invoice = result.documents[0]
        with KuboClient(stack.ipfs_api) as ipfs:
            pdf = ipfs.cat(invoice["pdf_cid"])
        proof_file, pdf_file = tmp_path / "proof.json", tmp_path / "invoice.pdf"
        proof = proofs["commercial_invoice"]
        assert proof is not None
        proof_file.write_text(proof.to_json())
        pdf_file.write_bytes(pdf)
        capsys.readouterr()
        assert tracehub(["verify", str(proof_file), "--document", str(pdf_file)]) == 0
        assert "ok    ledger" in capsys.readouterr().out
        pdf_file.write_bytes(pdf[:100] + bytes([pdf[100] ^ 0x20]) + pdf[101:])
        assert tracehub(["verify", str(proof_file), "--document", str(pdf_file)]) == 1
        assert "FAIL  document" in capsys.readouterr().out
        assert json.loads(proof.to_json())["event_id"] == invoice["event_id"]
