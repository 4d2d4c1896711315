"""What the PKI publishes for any verifier: the device CA's CRL as DER, and the ledger's records
of the device CA and of a device certificate, each as one lookup that says "not found" plainly.

The buyer page (api/static/verify.js) checks envelopes against these; none of them needs to be
trusted as served: the CRL is signed by the device CA, and the ledger's records can be read from
another organisation's peer (tracehub/ledger/witness.py) instead of the hub's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certs.pki import PKI
from certs.registry import LedgerRegistry
from tracehub.errors import NotFoundError
from tracehub.pki_names import PKIError

__all__ = ["NotPublishedError", "device_ca_crl_der", "device_ca_record", "device_certificate"]

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


class NotPublishedError(PKIError, NotFoundError):
    """The CRL, the device CA or the certificate asked for is not published (yet)."""


def device_ca_crl_der(pki_dir: Path) -> bytes:
    """The device CA's current CRL, DER encoded (as `application/pkix-crl`, RFC 5280 §4.2.1.13)."""
    path = PKI(pki_dir).ca_paths("device-ca")[2]
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise NotPublishedError("the device CA has published no CRL") from exc
    return crl.public_bytes(Encoding.DER)


def device_ca_record(registry: LedgerRegistry) -> dict[str, Any]:
    """The device CA as the ledger records it (SetDeviceCA): PEM, fingerprint, when."""
    record = registry.device_ca()
    if record is None:
        raise NotPublishedError("no device CA is recorded on the ledger")
    return record


def device_certificate(registry: LedgerRegistry, fingerprint: str) -> dict[str, Any]:
    """A device certificate's ledger record by SHA-256 fingerprint (hex): PEM, revocation."""
    if not _FINGERPRINT.fullmatch(fingerprint):
        raise NotPublishedError(f"{fingerprint!r} is not a SHA-256 fingerprint")
    record = registry.certificate(fingerprint)
    if record is None:
        raise NotPublishedError(f"certificate {fingerprint} is not enrolled on the ledger")
    return record
