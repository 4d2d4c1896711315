"""Naming rules shared by the PKI and its consumers: device ids, URIs, and ``PKIError``.

``PKIError`` is the root of the PKI's errors (certs re-exports it): it lives here, with the
naming rules that already refuse with it, so that the kernel never imports certs.

A device id is one safe MQTT topic level, URI segment and directory name:
``^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$``. A device certificate names its device twice, as
subject CN and as the URI SAN ``urn:tracehub:device:<id>``; both must agree.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.x509.oid import NameOID

from tracehub.errors import InvalidError, TraceHubError

__all__ = [
    "DEVICE_URI_PREFIX",
    "SERVICE_URI_PREFIX",
    "PKIError",
    "PKINameError",
    "device_id_from_certificate",
    "device_uri",
    "service_uri",
    "validate_device_id",
    "validate_service_name",
]

DEVICE_URI_PREFIX = "urn:tracehub:device:"
SERVICE_URI_PREFIX = "urn:tracehub:service:"

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class PKIError(TraceHubError):
    """Root of the PKI's errors (certs): an operation was refused; the message says why."""


class PKINameError(PKIError, InvalidError):
    """A device id or service name breaks the naming rule."""


def validate_device_id(device_id: str) -> str:
    """Return ``device_id`` unchanged if it follows the id rule, else raise ``PKINameError``."""
    if not isinstance(device_id, str) or _ID_RE.fullmatch(device_id) is None:
        raise PKINameError(
            f"invalid device id {device_id!r}: use 1-64 characters from A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return device_id


def validate_service_name(name: str) -> str:
    """Service names follow the device id rule (they become directory names and URIs)."""
    try:
        return validate_device_id(name)
    except PKINameError:
        raise PKINameError(
            f"invalid service name {name!r}: use 1-64 characters from A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        ) from None


def device_uri(device_id: str) -> str:
    """The URI SAN of a device certificate: ``urn:tracehub:device:<id>``."""
    return DEVICE_URI_PREFIX + validate_device_id(device_id)


def service_uri(name: str) -> str:
    """The URI SAN of a service certificate: ``urn:tracehub:service:<name>``."""
    return SERVICE_URI_PREFIX + validate_service_name(name)


def device_id_from_certificate(cert: x509.Certificate) -> str | None:
    """The device id a certificate names, or ``None``.

    ``None`` unless the certificate has exactly one ``urn:tracehub:device:`` URI SAN with a
    valid id and exactly one subject CN equal to that id.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)]
    ids = [u[len(DEVICE_URI_PREFIX) :] for u in uris if u.startswith(DEVICE_URI_PREFIX)]
    if len(ids) != 1 or _ID_RE.fullmatch(ids[0]) is None:
        return None
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1 or cns[0].value != ids[0]:
        return None
    return ids[0]
