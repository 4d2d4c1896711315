"""`tracehub verify` on real proofs: a batch of signed readings stored on the real IPFS node and
its root anchored on the real ledger verifies end to end; altering any byte of the reading hash,
the path or the root, or pointing at another batch, fails with the step that caught it."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support.processes import run_cli
from tests.support.signing import enrol_and_sign
from tracehub.batch import batch_tree, encode_batch
from tracehub.config import Settings
from tracehub.envelope import reading_hash
from tracehub.ipfs import KuboClient
from tracehub.ledger.local import connect_org
from tracehub.proof import Proof

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def anchored(stack: Settings) -> tuple[list[Proof], list[bytes]]:
    """Twelve readings from an enrolled device, batched to IPFS and anchored; their proofs."""
    device_id = f"audit-{uuid.uuid4().hex[:10]}"
    issued, envelopes = enrol_and_sign(stack, device_id, 12, temperature=4.0, humidity=50.0)
    batch_id = f"test-batch-{uuid.uuid4().hex[:12]}"
    tree = batch_tree(envelopes)
    with KuboClient(stack.ipfs_api) as ipfs:
        cid = ipfs.add(encode_batch(batch_id, envelopes))
    anchor = {
        "batch_id": batch_id,
        "root": tree.root.hex(),
        "ipfs_cid": cid,
        "count": 12,
        "first_ts": "x",
        "last_ts": "y",
        "devices": 1,
    }
    with connect_org(stack.fabric, 1) as hub:
        contract = hub.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        committed = contract.submit("AnchorBatch", json.dumps(anchor))
    proofs = [
        Proof.from_tree(
            tree,
            i,
            reading_hash(envelope),
            batch_id=batch_id,
            ipfs_cid=cid,
            tx_id=committed.tx_id,
            block_number=committed.block_number,
            channel=stack.fabric.channel,
            chaincode=stack.fabric.chaincode,
            device_certificate_sha256=issued.fingerprint_sha256,
        )
        for i, envelope in enumerate(envelopes)
    ]
    return proofs, envelopes


def _verify(proof: Proof | str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"proof-{uuid.uuid4().hex[:6]}.json"
    path.write_text(proof if isinstance(proof, str) else proof.to_json(indent=2))
    return run_cli("verify", str(path))


def _flip(hex_digest: str, position: int = 10) -> str:
    digit = "0" if hex_digest[position] != "0" else "1"
    return hex_digest[:position] + digit + hex_digest[position + 1 :]


def test_real_proofs_verify(anchored: tuple[list[Proof], list[bytes]], tmp_path: Path) -> None:
    proofs, _ = anchored
    for proof in (proofs[0], proofs[7], proofs[-1]):
        result = _verify(proof, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ok    ledger" in result.stdout
        assert f"anchored in tx {proof.tx_id}" in result.stdout


@pytest.mark.parametrize(
    ("field", "expected_step"),
    [("reading_hash", "path"), ("audit_path", "path"), ("root", "path")],
)
def test_altered_proofs_fail_with_the_step(
    anchored: tuple[list[Proof], list[bytes]], tmp_path: Path, field: str, expected_step: str
) -> None:
    proof = anchored[0][5].to_dict()
    if field == "audit_path":
        proof["audit_path"] = [_flip(proof["audit_path"][0]), *proof["audit_path"][1:]]
    else:
        proof[field] = _flip(proof[field])
    result = _verify(json.dumps(proof), tmp_path)
    assert result.returncode != 0
    assert f"FAIL  {expected_step}" in result.stdout, result.stdout + result.stderr


def test_consistent_forgery_is_caught_by_ipfs_and_ledger(
    anchored: tuple[list[Proof], list[bytes]], tmp_path: Path
) -> None:
    # A forger who rebuilds a self-consistent tree over altered readings passes the path check
    # but not the batch object on IPFS, and not the root on the ledger.
    proofs, envelopes = anchored
    original = proofs[3]
    altered = [*envelopes]
    altered[3] = envelopes[3][:-3] + b"AAA"
    tree = batch_tree(altered)
    forged = Proof.from_tree(
        tree,
        3,
        reading_hash(altered[3]),
        batch_id=original.batch_id,
        ipfs_cid=original.ipfs_cid,
        tx_id=original.tx_id,
        block_number=original.block_number,
        channel=original.channel,
        chaincode=original.chaincode,
        device_certificate_sha256=original.device_certificate_sha256,
    )
    result = _verify(forged, tmp_path)
    assert result.returncode == 1
    assert "FAIL  ipfs" in result.stdout
    assert "ok    path" in result.stdout
