"""Enrolment and revocation recorded on the real ledger, queryable by device id, through the
`tracehub devices` commands an operator uses."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta

import pytest

from certs.pki import PKI
from certs.registry import LedgerCertificateDirectory, LedgerRegistry
from tests.support.processes import run_cli
from tracehub.config import Settings
from tracehub.ledger import EndorseError
from tracehub.ledger.local import connect_registrar

pytestmark = pytest.mark.integration


def test_enrol_and_revoke_are_queryable_by_device_id(
    stack: Settings, registry: LedgerRegistry
) -> None:
    device_id = f"test-{uuid.uuid4().hex[:12]}"
    enrolled = run_cli("devices", "enrol", device_id)
    assert enrolled.returncode == 0, enrolled.stderr
    assert "on the ledger: tx" in enrolled.stdout
    issued = PKI(stack.pki_dir).device(device_id)[0]

    record = registry.device(device_id)
    assert record["device_id"] == device_id
    [certificate] = record["certificates"]
    assert certificate["fingerprint_sha256"] == issued.fingerprint_sha256
    assert certificate["status"] == "active"
    assert certificate["issuer"] == issued.issuer
    assert certificate["serial"] == format(issued.serial, "x")

    time.sleep(1.1)  # certificate times have whole seconds: keep enrolment and revocation apart
    revoked = run_cli("devices", "revoke", device_id, "--reason", "keyCompromise")
    assert revoked.returncode == 0, revoked.stderr
    [certificate] = registry.device(device_id)["certificates"]
    assert certificate["status"] == "revoked"
    assert certificate["revocation_reason"] == "keyCompromise"
    revoked_at = datetime.fromisoformat(certificate["revoked_at"])

    # Which certificate could speak for the device, at any moment:
    assert registry.valid_at(device_id, revoked_at - timedelta(seconds=1)) == [
        issued.fingerprint_sha256
    ]
    assert registry.valid_at(device_id, revoked_at) == []
    assert registry.valid_at(device_id, issued.not_before - timedelta(days=1)) == []

    history = registry.history(device_id)
    statuses = [change["value"]["status"] for change in history[issued.fingerprint_sha256]]
    assert statuses == ["active", "revoked"]

    shown = run_cli("devices", "show", device_id)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["certificates"][0]["status"] == "revoked"


def test_auditor_finds_a_certificate_by_fingerprint_on_the_ledger(
    stack: Settings, registry: LedgerRegistry
) -> None:
    device_id = f"test-{uuid.uuid4().hex[:12]}"
    assert run_cli("devices", "enrol", device_id).returncode == 0
    issued = PKI(stack.pki_dir).device(device_id)[0]
    directory = LedgerCertificateDirectory(registry)
    found = directory.by_fingerprint(bytes.fromhex(issued.fingerprint_sha256))
    assert found == issued.certificate
    assert directory.by_fingerprint(bytes(32)) is None


def test_only_the_hub_may_enrol(stack: Settings, registry: LedgerRegistry) -> None:
    pki = PKI(stack.pki_dir)
    issued = pki.enrol_simulated_device(f"test-{uuid.uuid4().hex[:12]}")
    with pytest.raises(EndorseError, match="only Org1MSP admin identities may enrol"):
        registry.enrol(issued.certificate_pem)  # registry is connected as Org2


def test_enrolling_the_same_certificate_twice_is_refused(stack: Settings) -> None:
    issued = PKI(stack.pki_dir).enrol_simulated_device(f"test-{uuid.uuid4().hex[:12]}")
    with connect_registrar(stack.fabric) as gateway:
        contract = gateway.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        hub = LedgerRegistry(contract)
        assert hub.enrol(issued.certificate_pem).status == "VALID"
        with pytest.raises(EndorseError, match="already enrolled"):
            hub.enrol(issued.certificate_pem)
        with pytest.raises(EndorseError, match="not a PEM certificate"):
            hub.enrol(b"garbage")
        result = hub.revoke(issued.device_id, reason="superseded")
        assert result.status == "VALID"
