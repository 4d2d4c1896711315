"""The gateway's cache of the device registry, against the real ledger: it knows what the
registrar enrolled and nothing the PKI issued alone, asks again for an unknown certificate only
after its re-check interval, and sees a revocation on its next refresh."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certs.enrolment import enrol_simulated_devices, record_on_ledger
from certs.pki import PKI
from certs.registry import LedgerRegistry
from certs.registry_cache import RegistryCache
from tracehub.config import Settings
from tracehub.ledger import EvaluateError
from tracehub.ledger.local import connect_org, connect_registrar

pytestmark = pytest.mark.integration


class Clock:
    """Monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_follows_the_ledger_not_the_pki(stack: Settings) -> None:
    pki = PKI(stack.pki_dir)
    tag = uuid.uuid4().hex[:8]
    [enrolled] = enrol_simulated_devices(pki, stack.fabric, [f"rc-on-{tag}"])
    pki_only = pki.enrol_simulated_device(f"rc-pki-{tag}")
    on_ledger, issued_only = (bytes.fromhex(c.fingerprint_sha256) for c in (enrolled, pki_only))
    clock = Clock()
    with connect_org(stack.fabric, 1) as gateway, connect_registrar(stack.fabric) as registrar:
        contract = gateway.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        cache = RegistryCache(LedgerRegistry(contract), miss_recheck_s=1.0, clock=clock)

        found = cache.enrolment(on_ledger)
        assert found is not None
        assert (found.device_id, found.revoked_at) == (enrolled.device_id, None)
        assert found.certificate == enrolled.certificate
        assert cache.by_fingerprint(issued_only) is None, "issued by the PKI, never enrolled"

        # An unknown certificate is not asked for again within the re-check interval...
        asked = cache.ledger_queries
        assert cache.by_fingerprint(issued_only) is None
        assert cache.ledger_queries == asked
        record_on_ledger(stack.fabric, [pki_only.certificate_pem])
        assert cache.by_fingerprint(issued_only) is None
        # ...and is found once the interval has passed.
        clock.now += 1.0
        assert cache.by_fingerprint(issued_only) == pki_only.certificate
        assert cache.ledger_queries == asked + 1

        # A revocation on the ledger only: the cached entry changes on the next refresh.
        revoke_registry = LedgerRegistry(
            registrar.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        )
        revoke_registry.revoke(enrolled.device_id, reason="keyCompromise")
        before = cache.enrolment(on_ledger)
        assert before is not None and before.revoked_at is None
        assert cache.refresh() == 1, "the revocation log names it; the other is not re-read"
        after = cache.enrolment(on_ledger)
        assert after is not None and after.revoked_at is not None
        assert abs(after.revoked_at - datetime.now(UTC)) < timedelta(minutes=2)
        assert after.revocation_reason == "keyCompromise"
        assert cache.refresh(full=True) == 2

        # Entries unused for forget_after_s are dropped, so refreshes cover active devices only.
        clock.now += cache.forget_after_s + 1
        assert cache.refresh() == 0

        # Warming at start loads what the ledger has and skips the rest.
        warmed = RegistryCache(LedgerRegistry(contract), clock=clock)
        assert (
            warmed.warm([enrolled.fingerprint_sha256, pki_only.fingerprint_sha256, "ab" * 32]) == 2
        )
        queries = warmed.ledger_queries
        assert warmed.by_fingerprint(on_ledger) == enrolled.certificate
        assert warmed.ledger_queries == queries


def test_many_certificates_in_one_query(stack: Settings) -> None:
    pki = PKI(stack.pki_dir)
    tag = uuid.uuid4().hex[:8]
    enrolled = enrol_simulated_devices(pki, stack.fabric, [f"rc-many-{tag}-{i}" for i in range(3)])
    unknown = "cd" * 32
    with connect_org(stack.fabric, 1) as gateway:
        contract = gateway.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        registry = LedgerRegistry(contract)
        fingerprints = [c.fingerprint_sha256 for c in enrolled]

        records = registry.certificates([*fingerprints, unknown])
        assert records[unknown] is None
        for certificate in enrolled:
            record = records[certificate.fingerprint_sha256]
            assert record == registry.certificate(certificate.fingerprint_sha256)
            assert record is not None and record["device_id"] == certificate.device_id

        # The chaincode takes only what it can answer cheaply and exactly.
        for bad in ("[]", "{}", "not json", '["ABC"]', json.dumps(["ab" * 32] * 501)):
            with pytest.raises(EvaluateError):
                contract.evaluate("GetDeviceCertificates", bad)

        # Warming many devices is one query (after one for the revocation log's count), a full
        # refresh one more pair.
        cache = RegistryCache(registry, clock=Clock())
        assert cache.warm([*fingerprints, unknown]) == 3
        assert cache.ledger_queries == 2
        assert cache.refresh(full=True) == 3
        assert cache.ledger_queries == 4

        # A chaincode from before GetDeviceCertificates (and the revocation log): one query per
        # certificate instead, and every refresh a full pass.
        class OldChaincode(LedgerRegistry):
            def certificates(self, fingerprints: Sequence[str]) -> dict[str, Any]:
                raise EvaluateError("unknown function 'GetDeviceCertificates'; known: ...")

            def revocations_after(self, after: int) -> tuple[int, list[dict[str, Any]]]:
                raise EvaluateError("unknown function 'GetRevocationsAfter'; known: ...")

        old = RegistryCache(OldChaincode(contract), clock=Clock())
        assert old.warm(fingerprints) == 3
        assert old.ledger_queries == 3
        assert old.refresh() == 3
        assert old.ledger_queries == 6


def test_a_refresh_asks_the_revocation_log_not_every_certificate(stack: Settings) -> None:
    pki = PKI(stack.pki_dir)
    tag = uuid.uuid4().hex[:8]
    held = enrol_simulated_devices(pki, stack.fabric, [f"rc-log-{tag}-{i}" for i in range(3)])
    [elsewhere] = enrol_simulated_devices(pki, stack.fabric, [f"rc-log-{tag}-x"])
    with connect_org(stack.fabric, 1) as gateway, connect_registrar(stack.fabric) as registrar:
        contract = gateway.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        registry = LedgerRegistry(contract)
        revoker = LedgerRegistry(
            registrar.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        )
        cache = RegistryCache(registry, clock=Clock())
        assert cache.warm([c.fingerprint_sha256 for c in held]) == 3

        # Nothing revoked: one small query, however many certificates the cache holds.
        queries = cache.ledger_queries
        assert cache.refresh() == 0
        assert cache.ledger_queries == queries + 1

        # A revoked certificate the cache does not hold is named by the log and not re-read...
        revoker.revoke(elsewhere.device_id, reason="superseded")
        assert cache.refresh() == 0
        # ...one it holds is re-read, and its revocation is seen; the others are unchanged.
        revoker.revoke(held[1].device_id, reason="keyCompromise")
        assert cache.refresh() == 1
        for index, certificate in enumerate(held):
            found = cache.enrolment(bytes.fromhex(certificate.fingerprint_sha256))
            assert found is not None
            assert (found.revoked_at is not None) == (index == 1)
            assert found.revocation_reason == ("keyCompromise" if index == 1 else None)

        # The log: the count alone for -1, then the entries after a given one, oldest first.
        count, none = registry.revocations_after(-1)
        assert none == []
        _, tail = registry.revocations_after(count - 2)
        assert [(e["n"], e["fingerprint_sha256"]) for e in tail] == [
            (count - 1, elsewhere.fingerprint_sha256),
            (count, held[1].fingerprint_sha256),
        ]
        assert registry.revocations_after(count) == (count, [])
        for bad in ("-2", "x", ""):
            with pytest.raises(EvaluateError):
                contract.evaluate("GetRevocationsAfter", bad)

        # Every full_refresh_every-th refresh re-reads them all: the backstop.
        cache.full_refresh_every = 4
        assert cache.refresh() == 3


def test_a_certificate_fetched_while_the_log_is_read_is_not_missed(stack: Settings) -> None:
    """The cache reads what it holds after the log: a certificate looked up (active) just before
    its revocation, both while a refresh asks the log, is re-read by that refresh."""
    pki = PKI(stack.pki_dir)
    tag = uuid.uuid4().hex[:8]
    early, late = enrol_simulated_devices(pki, stack.fabric, [f"rc-race-{tag}-{i}" for i in (1, 2)])
    with connect_org(stack.fabric, 1) as gateway, connect_registrar(stack.fabric) as registrar:
        contract = gateway.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        revoker = LedgerRegistry(
            registrar.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        )
        late_key = bytes.fromhex(late.fingerprint_sha256)
        caches: list[RegistryCache] = []

        class Interleaved(LedgerRegistry):
            def revocations_after(self, after: int) -> tuple[int, list[dict[str, Any]]]:
                if after >= 0 and caches and late_key not in caches[0]._entries:
                    found = caches[0].enrolment(late_key)  # the ingest thread meets the device
                    assert found is not None and found.revoked_at is None
                    revoker.revoke(late.device_id, reason="keyCompromise")
                return super().revocations_after(after)

        cache = RegistryCache(Interleaved(contract), clock=Clock())
        caches.append(cache)
        assert cache.warm([early.fingerprint_sha256]) == 1
        assert cache.refresh() == 1
        found = cache.enrolment(late_key)
        assert found is not None and found.revoked_at is not None
