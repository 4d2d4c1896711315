"""Enrolment as the gateway needs it: a certificate from the hub's PKI *and* its record on the
ledger, written by the registrar (`connect_registrar`, as `tracehub devices enrol` does).

The gateway accepts readings only from certificates enrolled on the ledger (decision 0024), so
everything that makes devices for it — the demo, the benchmarks, the tests — goes through here.
Several certificates are submitted concurrently: the orderer cuts them into one block, so ten
devices cost about as much as one.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from certs.pki import PKI, DeviceCertificate
from certs.registry import LedgerRegistry
from tracehub.config import FabricSettings
from tracehub.ledger import SubmitResult
from tracehub.ledger.local import connect_registrar

MAX_CONCURRENT = 16


def record_on_ledger(
    fabric: FabricSettings, certificates_pem: Sequence[bytes]
) -> list[SubmitResult]:
    """Enrol these device certificates on the ledger as the registrar, concurrently; raises the
    first :class:`tracehub.ledger.LedgerError` if any is refused."""
    if not certificates_pem:
        return []
    with connect_registrar(fabric) as gateway:
        registry = LedgerRegistry(
            gateway.get_network(fabric.channel).get_contract(fabric.chaincode)
        )
        workers = min(MAX_CONCURRENT, len(certificates_pem))
        with ThreadPoolExecutor(workers, thread_name_prefix="enrol") as pool:
            return list(pool.map(registry.enrol, certificates_pem))


def enrol_simulated_devices(
    pki: PKI,
    fabric: FabricSettings,
    device_ids: Sequence[str],
    *,
    not_before: datetime | None = None,
    validity_days: int = 365,
) -> list[DeviceCertificate]:
    """Issue each device a generated key and certificate from the PKI, then record them all on
    the ledger: devices the gateway accepts."""
    issued = [
        pki.enrol_simulated_device(d, not_before=not_before, validity_days=validity_days)
        for d in device_ids
    ]
    record_on_ledger(fabric, [i.certificate_pem for i in issued])
    return issued
