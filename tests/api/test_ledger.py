"""The API's one ledger (api/ledger.py): a gateway per organisation opened on first use, the
first organisation that can be had, a gateway dropped when a call finds the ledger unreachable,
and 503 when no gateway can be opened. No stack: a gateway to a closed port is unreachable."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.errors import status_of
from api.ledger import AUDIT_ORG, HUB_ORG, AppLedger, LedgerUnreachableError
from tracehub.config import FabricSettings
from tracehub.ledger import Gateway, Identity, LedgerUnavailableError, Signer

FABRIC = FabricSettings(crypto_dir=Path("/nonexistent"))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Unreachable:
    """Opens gateways to a port nobody listens on, and remembers them."""

    def __init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "User1")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        self.identity = Identity("Org2MSP", cert.public_bytes(serialization.Encoding.PEM))
        self.signer = Signer.from_pem(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.endpoint = f"127.0.0.1:{_closed_port()}"
        self.opened: list[tuple[int, Gateway]] = []

    def __call__(self, fabric: FabricSettings, org: int) -> Gateway:
        gateway = Gateway.connect(self.endpoint, identity=self.identity, signer=self.signer)
        self.opened.append((org, gateway))
        return gateway


def test_one_gateway_per_organisation_made_on_first_use_and_closed_once() -> None:
    connect = Unreachable()
    ledger = AppLedger(FABRIC, connect)
    assert connect.opened == []
    ledger.contract(AUDIT_ORG)
    ledger.contract(AUDIT_ORG, HUB_ORG)
    ledger.contract(HUB_ORG)
    assert [org for org, _ in connect.opened] == [AUDIT_ORG, HUB_ORG]
    ledger.close()
    assert all(gateway.closed for _, gateway in connect.opened)


def test_an_unreachable_ledger_drops_the_gateway_and_the_next_use_connects_afresh() -> None:
    connect = Unreachable()
    ledger = AppLedger(FABRIC, connect)
    contract = ledger.contract(AUDIT_ORG)
    with pytest.raises(LedgerUnavailableError) as caught:
        contract.evaluate("GetAnchor", "b-1")
    assert status_of(caught.value) == 503
    (_, dropped), *_ = connect.opened
    assert dropped.closed
    ledger.contract(AUDIT_ORG)
    assert len(connect.opened) == 2 and not connect.opened[1][1].closed
    ledger.close()


def test_the_first_organisation_that_can_be_opened_answers_else_503() -> None:
    connect = Unreachable()

    def org2_missing(fabric: FabricSettings, org: int) -> Gateway:
        if org == AUDIT_ORG:
            raise OSError("no Org2 identity here")
        return connect(fabric, org)

    ledger = AppLedger(FABRIC, org2_missing)
    ledger.contract(AUDIT_ORG, HUB_ORG)
    assert [org for org, _ in connect.opened] == [HUB_ORG]
    with pytest.raises(LedgerUnreachableError, match="org2: no Org2 identity here") as caught:
        ledger.contract(AUDIT_ORG)
    assert status_of(caught.value) == 503
    ledger.close()
    # The real connection: no identity files at all.
    with pytest.raises(LedgerUnreachableError, match="org1: "):
        AppLedger(FABRIC).contract(HUB_ORG)
