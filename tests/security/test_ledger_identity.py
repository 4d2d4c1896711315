"""Attacks on the ledger below the API, against the real Fabric network: squatting a record id the
hub is about to use, enrolling a forged device certificate, writing as the wrong identity of the
right organisation, and choosing a revocation's time."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from certs.pki import PKI
from certs.registry import LedgerRegistry
from commerce.ledger import FabricRecords, LedgerConflictError, publish_pending
from tests.support.pki import Issued, make_ca, make_certificate, name, new_key
from tracehub.config import Settings
from tracehub.ledger import Contract, EndorseError, Gateway
from tracehub.ledger.local import connect_org, connect_registrar


def _contract(gateway: Gateway, stack: Settings) -> Contract:
    return gateway.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)


@pytest.fixture(scope="module")
def gateways(stack: Settings) -> Iterator[dict[str, Contract]]:
    """The hub's services (Org1 User1), its registrar (Org1 Admin) and the other member (Org2)."""
    with (
        connect_org(stack.fabric, 1) as hub,
        connect_registrar(stack.fabric) as registrar,
        connect_org(stack.fabric, 2) as other,
    ):
        yield {
            "hub": _contract(hub, stack),
            "registrar": _contract(registrar, stack),
            "org2": _contract(other, stack),
        }


def test_org2_cannot_squat_the_id_of_a_hub_decision(gateways: dict[str, Contract]) -> None:
    record_id = f"payment-decision:{uuid.uuid4()}:1"
    squatted = gateways["org2"].submit("PutRecord", record_id, json.dumps({"decision": "hold"}))
    assert json.loads(squatted.result)["namespace"] == "Org2MSP"

    hub = FabricRecords(gateways["hub"])
    tx_id = hub.put(record_id, {"decision": "release"})
    cited = hub.get(record_id)  # what the hub (and an auditor) cites: the hub's namespace
    assert cited["value"] == {"decision": "release"}
    assert cited["tx_id"] == tx_id != squatted.tx_id
    assert cited["creator_msp"] == "Org1MSP"
    # Org2's record is still there, in Org2's namespace, named as such.
    theirs = json.loads(gateways["hub"].evaluate("GetRecord", record_id, "Org2MSP"))
    assert theirs["value"] == {"decision": "hold"}


def test_the_hub_never_adopts_a_different_record_under_its_id(
    gateways: dict[str, Contract],
) -> None:
    record_id = f"payment-decision:{uuid.uuid4()}:1"
    hub = FabricRecords(gateways["hub"])
    first = hub.put(record_id, {"decision": "hold"})
    # A retry of the same decision (published, then the process died) adopts the record ...
    assert hub.put(record_id, {"decision": "hold"}) == first
    # ... a different one under the same id fails loudly.
    with pytest.raises(LedgerConflictError, match="different record"):
        hub.put(record_id, {"decision": "release"})


class _Rows:
    """The one query `publish_pending` makes and the update it would write, in memory."""

    def __init__(self, record_id: str) -> None:
        self.row = (str(uuid.uuid4()), 1, "release", {}, record_id, datetime.now(UTC))
        self.updates: list[tuple[object, ...]] = []

    def execute(self, statement: str, params: tuple[object, ...] = ()) -> _Rows:
        if statement.startswith("UPDATE"):
            self.updates.append(params)
        return self

    def fetchall(self) -> list[tuple[object, ...]]:
        return [self.row]

    def commit(self) -> None:
        pass


def test_a_conflicting_decision_stays_unpublished(gateways: dict[str, Contract]) -> None:
    record_id = f"payment-decision:{uuid.uuid4()}:1"
    gateways["hub"].submit("PutRecord", record_id, json.dumps({"decision": "hold"}))
    rows = _Rows(record_id)
    assert publish_pending(rows, FabricRecords(gateways["hub"])) == 0
    assert rows.updates == []  # no tx id of someone else's record is written to the row


def _device_certificate(device_id: str, issuer: Issued) -> bytes:
    """A device certificate (CN and URI SAN name the device) signed with ``issuer``'s key."""
    now = datetime.now(UTC)
    cert = make_certificate(
        name(device_id),
        new_key().public_key(),
        issuer,
        issuer.key,
        ca=False,
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(days=1),
        uris=[f"urn:tracehub:device:{device_id}"],
    )
    return cert.public_bytes(Encoding.PEM)


def test_a_forged_device_certificate_is_refused_even_by_the_registrar(
    stack: Settings, gateways: dict[str, Contract]
) -> None:
    registrar = LedgerRegistry(gateways["registrar"])
    device_id = f"forged-{uuid.uuid4().hex[:10]}"
    # The real device CA's name and certificate, another key: the issuer name matches.
    impostor = Issued(new_key(), PKI(stack.pki_dir).device_ca_certificate())
    with pytest.raises(EndorseError, match="not issued by the device CA"):
        registrar.enrol(_device_certificate(device_id, impostor))
    # A certificate of a whole other CA likewise.
    with pytest.raises(EndorseError, match="not issued by the device CA"):
        registrar.enrol(_device_certificate(device_id, make_ca("Other root")))
    assert registrar.certificate("0" * 64) is None


def test_only_the_registrar_identity_writes_the_device_registry(
    stack: Settings, gateways: dict[str, Contract]
) -> None:
    issued = PKI(stack.pki_dir).enrol_simulated_device(f"test-{uuid.uuid4().hex[:12]}")
    for caller in ("hub", "org2"):  # Org1's services (client OU) and the other member
        with pytest.raises(EndorseError, match="only Org1MSP admin identities may enrol"):
            LedgerRegistry(gateways[caller]).enrol(issued.certificate_pem)
    registrar = LedgerRegistry(gateways["registrar"])
    assert registrar.enrol(issued.certificate_pem).status == "VALID"
    with pytest.raises(EndorseError, match="only Org1MSP admin identities may revoke"):
        LedgerRegistry(gateways["hub"]).revoke(issued.device_id, reason="keyCompromise")
    # The recorded device CA cannot be replaced, by anyone.
    other = make_ca("Replacement device CA").cert.public_bytes(Encoding.PEM)
    with pytest.raises(EndorseError, match="different device CA is already recorded"):
        registrar.record_device_ca(other)
    with pytest.raises(EndorseError, match="only Org1MSP admin identities"):
        LedgerRegistry(gateways["org2"]).record_device_ca(other)
    recorded = LedgerRegistry(gateways["org2"]).device_ca()
    assert recorded is not None
    ca = PKI(stack.pki_dir).device_ca_certificate()
    assert recorded["certificate_pem"] == ca.public_bytes(Encoding.PEM).decode()


def test_anchoring_is_for_the_hub_services_not_its_admin(
    gateways: dict[str, Contract],
) -> None:
    anchor = {"batch_id": f"b-{uuid.uuid4().hex}", "root": "a" * 64, "count": 1}
    with pytest.raises(EndorseError, match="only Org1MSP client identities may anchor"):
        gateways["registrar"].submit("AnchorBatch", json.dumps(anchor))


def test_a_revocation_takes_the_transaction_time(
    stack: Settings, gateways: dict[str, Contract]
) -> None:
    issued = PKI(stack.pki_dir).enrol_simulated_device(f"test-{uuid.uuid4().hex[:12]}")
    registrar = LedgerRegistry(gateways["registrar"])
    registrar.enrol(issued.certificate_pem)
    backdated = "2020-01-01T00:00:00Z"  # the old four-argument call, with the caller's time
    with pytest.raises(EndorseError, match="expected 3 argument"):
        gateways["registrar"].submit(
            "RevokeDevice", issued.device_id, "", "keyCompromise", backdated
        )
    before = datetime.now(UTC) - timedelta(seconds=30)
    registrar.revoke(issued.device_id, reason="keyCompromise")
    [record] = registrar.device(issued.device_id)["certificates"]
    revoked_at = datetime.fromisoformat(record["revoked_at"])
    assert before <= revoked_at <= datetime.now(UTC) + timedelta(seconds=30)
