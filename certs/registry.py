"""The device registry on the ledger: enrolments and revocations, queryable by device id.

A thin typed layer over the chaincode's device functions (chaincode/devices.py), used by the CLI
after the PKI issues or revokes a certificate, and by auditors who look a certificate up by its
fingerprint without the hub's database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from tracehub.ledger import Contract, EvaluateError, SubmitResult

# The most GetDeviceCertificates answers in one query
# (chaincode.devices.MAX_CERTIFICATES_PER_QUERY).
CERTIFICATES_PER_QUERY = 500


def _rfc3339(moment: datetime) -> str:
    """UTC with a Z, as the chaincode records and compares times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class LedgerRegistry:
    """Device enrolment and revocation records on the Fabric ledger."""

    def __init__(self, contract: Contract) -> None:
        self._contract = contract

    def enrol(self, certificate_pem: bytes) -> SubmitResult:
        """Record a device certificate; the chaincode derives id, fingerprint and validity."""
        return self._contract.submit("EnrolDevice", certificate_pem.decode())

    def record_device_ca(self, ca_pem: bytes) -> dict[str, Any]:
        """Record the device CA on the ledger (once; the same CA again changes nothing): the
        chaincode enrols only certificates it signed."""
        result = self._contract.submit("SetDeviceCA", ca_pem.decode())
        recorded: dict[str, Any] = json.loads(result.result)
        return recorded

    def device_ca(self) -> dict[str, Any] | None:
        """The device CA recorded on the ledger, or None before set-up recorded one."""
        try:
            raw = self._contract.evaluate("GetDeviceCA")
        except EvaluateError as exc:
            if "no device CA" in str(exc):
                return None
            raise
        recorded: dict[str, Any] = json.loads(raw)
        return recorded

    def revoke(self, device_id: str, *, fingerprint: str = "", reason: str) -> SubmitResult:
        """Record a revocation at the transaction's time (all active certificates of the device
        when no fingerprint)."""
        return self._contract.submit("RevokeDevice", device_id, fingerprint, reason)

    def device(self, device_id: str) -> dict[str, Any]:
        """The device and all its certificate records."""
        result: dict[str, Any] = json.loads(self._contract.evaluate("GetDevice", device_id))
        return result

    def certificate(self, fingerprint: str) -> dict[str, Any] | None:
        """One certificate record by SHA-256 fingerprint (hex), or None if never enrolled."""
        try:
            raw = self._contract.evaluate("GetDeviceCertificate", fingerprint)
        except EvaluateError as exc:
            if "not found" in str(exc):
                return None
            raise
        result: dict[str, Any] = json.loads(raw)
        return result

    def certificates(self, fingerprints: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Many certificate records by fingerprint (hex) in as few queries as the chaincode
        allows (``GetDeviceCertificates``); None for one never enrolled."""
        records: dict[str, dict[str, Any] | None] = {}
        for start in range(0, len(fingerprints), CERTIFICATES_PER_QUERY):
            chunk = list(fingerprints[start : start + CERTIFICATES_PER_QUERY])
            raw = self._contract.evaluate("GetDeviceCertificates", json.dumps(chunk))
            records.update(json.loads(raw))
        return records

    def revocations_after(self, after: int) -> tuple[int, list[dict[str, Any]]]:
        """The revocation log's count and its entries after the ``after``-th (at most 500, oldest
        first; none for ``after`` = -1), each naming a revoked certificate's fingerprint."""
        raw = json.loads(self._contract.evaluate("GetRevocationsAfter", str(after)))
        return int(raw["count"]), list(raw["revocations"])

    def valid_at(self, device_id: str, moment: datetime) -> list[str]:
        """Fingerprints of the device's certificates that were valid at ``moment``."""
        raw = self._contract.evaluate("DeviceCertificatesValidAt", device_id, _rfc3339(moment))
        valid: list[str] = json.loads(raw)["valid"]
        return valid

    def history(self, device_id: str) -> dict[str, Any]:
        """Every committed change of the device record and of each of its certificates."""
        result: dict[str, Any] = json.loads(self._contract.evaluate("GetDeviceHistory", device_id))
        return result


class LedgerCertificateDirectory:
    """Finds device certificates by fingerprint on the ledger (the auditor's directory)."""

    def __init__(self, registry: LedgerRegistry) -> None:
        self._registry = registry
        self._cache: dict[bytes, x509.Certificate | None] = {}

    def by_fingerprint(self, sha256: bytes) -> x509.Certificate | None:
        if sha256 not in self._cache:
            record = self._registry.certificate(sha256.hex())
            self._cache[sha256] = (
                None
                if record is None
                else x509.load_pem_x509_certificate(record["certificate_pem"].encode())
            )
        return self._cache[sha256]
