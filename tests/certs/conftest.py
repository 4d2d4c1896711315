"""Certificates: the device PKI, the device registry on the ledger, device identity end to end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certs.registry import LedgerCertificateDirectory, LedgerRegistry
from tracehub.config import Settings
from tracehub.ledger.local import connect_org


@pytest.fixture(scope="module")
def registry(stack: Settings) -> Iterator[LedgerRegistry]:
    """The device registry as Org2 reads it: the other party, not the hub that enrols."""
    with connect_org(stack.fabric, 2) as gateway:
        contract = gateway.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        yield LedgerRegistry(contract)


@pytest.fixture(scope="module")
def directory(registry: LedgerRegistry) -> LedgerCertificateDirectory:
    """The auditor's view of device certificates: Org2's peer, no access to the hub's PKI index
    or database."""
    return LedgerCertificateDirectory(registry)
