"""The public PKI evidence the buyer page checks envelopes with (api/pki.py): the device CA's
CRL as the PKI publishes it, and the ledger's device CA and device certificate records, open to
anyone without signing in; 404 for what is not published."""

from __future__ import annotations

import hashlib
import secrets

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certs.pki import PKI
from certs.registry import LedgerRegistry
from tests.support.api import ApiHarness
from tracehub.config import Settings
from tracehub.ledger.local import connect_registrar

pytestmark = pytest.mark.integration


def test_the_device_cas_crl_is_public_der_signed_by_the_device_ca(
    api: ApiHarness, stack: Settings
) -> None:
    reply = api.client.get("/pki/crls/device-ca")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(reply.content)
    ca = PKI(stack.pki_dir).device_ca_certificate()
    assert crl.issuer == ca.subject
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]


def test_the_ledgers_device_ca_and_certificates_are_public(
    api: ApiHarness, stack: Settings
) -> None:
    pki = PKI(stack.pki_dir)
    ca = api.client.get("/ledger/device-ca")
    assert ca.status_code == 200
    recorded = x509.load_pem_x509_certificate(ca.json()["certificate_pem"].encode())
    assert recorded == pki.device_ca_certificate()

    device = f"pki-evidence-{secrets.token_hex(4)}"
    issued = pki.enrol_simulated_device(device)
    with connect_registrar(stack.fabric) as gateway:
        contract = gateway.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        LedgerRegistry(contract).enrol(issued.certificate_pem)
    certificate = pki.device(device)[0].certificate
    fingerprint = hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
    reply = api.client.get(f"/ledger/certificates/{fingerprint}")
    assert reply.status_code == 200
    body = reply.json()
    assert body["device_id"] == device and body["status"] == "active"
    assert x509.load_pem_x509_certificate(body["certificate_pem"].encode()) == certificate

    unknown = api.client.get(f"/ledger/certificates/{secrets.token_hex(32)}")
    assert unknown.status_code == 404
    assert "not enrolled" in unknown.json()["detail"]
    assert api.client.get("/ledger/certificates/not-hex").status_code == 404
