"""PKI tooling: CAs, device enrolment and revocation (issue 3). Keys are never committed."""

from certs.pki import PKI, DeviceCertificate, PKIError, generate_device_key_and_csr
from tracehub.pki_names import device_id_from_certificate, device_uri, validate_device_id

__all__ = [
    "PKI",
    "DeviceCertificate",
    "PKIError",
    "device_id_from_certificate",
    "device_uri",
    "generate_device_key_and_csr",
    "validate_device_id",
]
