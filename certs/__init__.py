"""The PKI's storage side: CAs, device enrolment, revocation and CRLs (certs.pki), and the
device registry on the ledger (certs.registry). Generated keys stay in .run/pki/, never in git.

Naming rules (device ids, URIs) are the kernel's (tracehub.pki_names), re-exported here.
"""

from certs.pki import (
    PKI,
    DeviceCertificate,
    PKIError,
    PKINameError,
    PKIRequestError,
    PKIStateError,
    UnknownDeviceError,
    generate_device_key_and_csr,
)
from tracehub.pki_names import device_id_from_certificate, device_uri, validate_device_id

__all__ = [
    "PKI",
    "DeviceCertificate",
    "PKIError",
    "PKINameError",
    "PKIRequestError",
    "PKIStateError",
    "UnknownDeviceError",
    "device_id_from_certificate",
    "device_uri",
    "generate_device_key_and_csr",
    "validate_device_id",
]
