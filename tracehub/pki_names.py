"""Naming rules shared by the PKI and its consumers: device ids, URIs, and ``PKIError``.

``PKIError`` is the root of the PKI's errors (certs re-exports it): it lives here, with the
naming rules that already refuse with it, so that the kernel never imports certs.

A device id is one safe MQTT topic level, URI segment and directory name:
``^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$``. A device certificate names its device twice, as
subject CN and as the URI SAN ``urn:tracehub:device:<id>``; both must agree.

The broker takes a client certificate's CN as the MQTT username. Services are
``service:<name>``, organisations' staff clients ``org:<org_id>`` (the organisations table's
id rule, ``^[a-z0-9][a-z0-9-]{0,62}$``): a colon appears in no device id, and the prefixes
differ, so no two kinds of client can ever share a username. The broker also takes the username
as the MQTT client id, so a client id, and the session it names, belongs to one certificate:
each gateway process has identities of its own (``gateway_services``), never shared.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.x509.oid import NameOID

from tracehub.errors import InvalidError, TraceHubError

__all__ = [
    "DEVICE_URI_PREFIX",
    "ORG_ALERT_TOPIC",
    "ORG_URI_PREFIX",
    "ORG_USERNAME_PREFIX",
    "SERVICE_URI_PREFIX",
    "PKIError",
    "PKINameError",
    "device_id_from_certificate",
    "device_uri",
    "gateway_services",
    "org_alert_topic",
    "org_uri",
    "org_username",
    "service_uri",
    "service_username",
    "site_service",
    "validate_device_id",
    "validate_org_id",
    "validate_service_name",
]

DEVICE_URI_PREFIX = "urn:tracehub:device:"
SERVICE_URI_PREFIX = "urn:tracehub:service:"
ORG_URI_PREFIX = "urn:tracehub:org:"
ORG_USERNAME_PREFIX = "org:"
#: An organisation's alert topics name its broker username, so that the broker's ACL can
#: admit each organisation client to its own tree with one ``pattern read`` line (%u).
ORG_ALERT_TOPIC = "tracehub/v1/orgs/{username}/alerts/{kind}"

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: organisations.org_id's CHECK (0002_auth.sql): also one safe MQTT topic level.
_ORG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


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


def validate_org_id(org_id: str) -> str:
    """Return ``org_id`` unchanged if it follows the organisations' id rule."""
    if not isinstance(org_id, str) or _ORG_RE.fullmatch(org_id) is None:
        raise PKINameError(
            f"invalid organisation id {org_id!r}: use 1-63 characters from a-z 0-9 -, "
            "starting with a letter or digit"
        )
    return org_id


def org_username(org_id: str) -> str:
    """The CN (MQTT username) of an organisation's staff client: ``org:<org_id>``."""
    return ORG_USERNAME_PREFIX + validate_org_id(org_id)


def org_alert_topic(org_id: str, kind: str = "#") -> str:
    """The topic of an organisation's alerts of ``kind`` (``#``: every kind, to subscribe)."""
    return ORG_ALERT_TOPIC.format(username=org_username(org_id), kind=kind)


def org_uri(org_id: str) -> str:
    """The URI SAN of an organisation's staff client certificate."""
    return ORG_URI_PREFIX + validate_org_id(org_id)


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


def service_username(name: str) -> str:
    """The CN (MQTT username and client id) of a service's certificate: ``service:<name>``."""
    return "service:" + validate_service_name(name)


def gateway_services(name: str) -> tuple[str, str]:
    """The two service names of the gateway process ``name`` (``python -m gateway --name``):
    its consumer ``gateway-<name>`` and its alert publisher ``gateway-<name>.alerts``. Each is a
    certificate of its own, so the two connections of one process never share a client id."""
    consumer = validate_service_name(f"gateway-{name}")
    return consumer, validate_service_name(f"{consumer}.alerts")


def site_service(name: str) -> str:
    """The service name of site broker ``name`` (network/mosquitto/site-broker.sh NAME):
    ``site-<name>``. One certificate serves its listener (to the site's devices) and its bridge
    to the hub, where its CN ``service:site-<name>`` may only forward device topics."""
    return validate_service_name(f"site-{name}")
