"""The PKI's hold on the running broker: Mosquitto's dynamic-security plugin, driven over MQTT.

The broker takes each client certificate's CN as the username and the client id
(network/mosquitto/mosquitto.sh). Devices and organisations get their rights from the static
ACL file by pattern; the plugin's clients are the names that get rights at run time:

- ``admit_gateway``: a gateway process's two identities get the role ``gateway`` (read every
  device topic, publish acknowledgements and alerts), without restarting the broker;
- ``cut_off_device``: a revoked device gets the role ``revoked`` (every publish, subscription
  and delivery refused) and is disabled, which disconnects it at once;
- ``readmit_device``: a device enrolled again drops that role;
- ``admit_site``: a site broker's bridge identity gets the role ``site`` (publish device
  readings and dropped-range reports) and a role of its own, ``site-<name>``, that may read
  the acknowledgement topics of the site's listed devices and nothing else.

Commands go to ``$CONTROL/dynamic-security/v1`` as the ``service:broker-admin`` identity, the
only client with the plugin's control topic; the plugin answers on ``.../response`` and saves
its state, so a broker restart keeps it. The role names and their rights are defined in the
broker's start script, which writes the plugin's initial configuration.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from certs.pki import PKI
from tracehub.acks import ack_topic
from tracehub.config import Settings
from tracehub.errors import UnavailableError
from tracehub.mqtt import tls_client
from tracehub.pki_names import PKIError, service_username, validate_device_id

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
ADMIN_SERVICE = "broker-admin"
GATEWAY_ROLE = "gateway"
REVOKED_ROLE = "revoked"
SITE_ROLE = "site"


class BrokerControlError(PKIError, UnavailableError):
    """The broker could not be reached as its administrator, or refused a command."""


@dataclass(frozen=True)
class BrokerEndpoint:
    """Where the broker listens (the settings' ``mqtt_host``/``mqtt_tls_port``)."""

    host: str
    port: int

    @classmethod
    def of(cls, settings: Settings) -> BrokerEndpoint:
        return cls(settings.mqtt_host, settings.mqtt_tls_port)


class BrokerControl:
    """One administrator connection; ``run`` sends commands and returns the plugin's answers."""

    def __init__(self, client: mqtt.Client, timeout_s: float) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._responses: queue.Queue[bytes] = queue.Queue()
        client.on_message = lambda c, u, message: self._responses.put(bytes(message.payload))

    def run(self, commands: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send ``commands`` in one message; one response each, in order, errors included."""
        self._client.publish(CONTROL_TOPIC, json.dumps({"commands": list(commands)}), qos=1)
        try:
            payload = self._responses.get(timeout=self._timeout_s)
        except queue.Empty:
            raise BrokerControlError(
                f"the broker did not answer on {RESPONSE_TOPIC} within {self._timeout_s} s"
            ) from None
        responses: list[dict[str, Any]] = json.loads(payload)["responses"]
        return responses

    def check(self, commands: Sequence[dict[str, Any]], tolerated: Sequence[str] = ()) -> None:
        """``run``; raise on any error other than those containing one of ``tolerated``."""
        for response in self.run(commands):
            error = str(response.get("error", ""))
            if error and not any(part in error for part in tolerated):
                raise BrokerControlError(f"broker: {response['command']}: {error}")


@contextmanager
def broker_control(
    pki: PKI, endpoint: BrokerEndpoint, timeout_s: float = 5.0
) -> Iterator[BrokerControl]:
    """Connect as ``service:broker-admin`` and subscribe to the plugin's responses."""
    cert, key, _ = pki.service_paths(ADMIN_SERVICE)
    client = tls_client(
        service_username(ADMIN_SERVICE), ca_file=pki.ca_bundle_path, cert_file=cert, key_file=key
    )
    ready: queue.Queue[str] = queue.Queue()
    client.on_connect = lambda c, u, f, reason, p: ready.put(str(reason))
    client.on_subscribe = lambda c, u, mid, reasons, p: ready.put(str(reasons[0]))
    try:
        client.connect(endpoint.host, endpoint.port, keepalive=30)
    except OSError as exc:
        raise BrokerControlError(f"broker at {endpoint.host}:{endpoint.port}: {exc}") from exc
    client.loop_start()
    try:
        _expect(ready, "Success", "connection", timeout_s)
        client.subscribe(RESPONSE_TOPIC, qos=1)
        _expect(ready, "Granted QoS 1", f"subscription to {RESPONSE_TOPIC}", timeout_s)
        yield BrokerControl(client, timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()


def _expect(answers: queue.Queue[str], wanted: str, what: str, timeout_s: float) -> None:
    try:
        answer = answers.get(timeout=timeout_s)
    except queue.Empty:
        answer = f"no answer within {timeout_s} s"
    if answer != wanted:
        raise BrokerControlError(f"broker administrator {what}: {answer}")


def admit_gateway(pki: PKI, endpoint: BrokerEndpoint, name: str) -> tuple[str, str]:
    """Issue (if needed) the identities of gateway process ``name`` and give them the role
    ``gateway`` on the running broker; their service names."""
    names = pki.ensure_gateway_certificates(name)
    with broker_control(pki, endpoint) as control:
        for service in names:
            _ensure_role(control, service_username(service), GATEWAY_ROLE)
    return names


def admit_site(pki: PKI, endpoint: BrokerEndpoint, name: str, devices: Sequence[str] = ()) -> str:
    """Issue (if needed) the identity of site broker ``name``, list ``devices`` at the site,
    and give it, on the running hub broker, the role ``site`` and its own role granting the
    listed devices' acknowledgement topics; its service name."""
    service = pki.ensure_site_certificate(name)
    listed = pki.add_site_devices(name, devices)
    with broker_control(pki, endpoint) as control:
        username = service_username(service)
        _ensure_role(control, username, SITE_ROLE)
        if listed:
            control.check([{"command": "createRole", "rolename": service}], ("already exists",))
            control.check(
                [
                    {
                        "command": "addRoleACL",
                        "rolename": service,
                        "acltype": acltype,
                        "topic": ack_topic(device),
                        "allow": True,
                    }
                    for device in listed
                    for acltype in ("subscribeLiteral", "publishClientReceive")
                ],
                ("already exists",),
            )
            # Checked before the role ``site``, whose explicit denials would otherwise win.
            _ensure_role(control, username, service, priority=1)
    return service


def cut_off_device(pki: PKI, endpoint: BrokerEndpoint, device_id: str) -> None:
    """Give the device's username the role ``revoked`` and disable it: the plugin disconnects
    its connection at once, and whatever it connects with until the broker's next start loads
    the new CRL (which refuses the handshake) may neither publish, subscribe nor receive."""
    username = validate_device_id(device_id)
    with broker_control(pki, endpoint) as control:
        _ensure_role(control, username, REVOKED_ROLE)
        control.check([{"command": "disableClient", "username": username}])


def readmit_device(pki: PKI, endpoint: BrokerEndpoint, device_id: str) -> None:
    """Forget a device the broker was told to cut off (it was enrolled again)."""
    username = validate_device_id(device_id)
    with broker_control(pki, endpoint) as control:
        control.check([{"command": "deleteClient", "username": username}], ("not found",))


def _ensure_role(control: BrokerControl, username: str, role: str, priority: int = -1) -> None:
    """The plugin's client ``username`` exists and has ``role`` at ``priority`` (higher is
    checked first; adding a role it already has is an "Internal error" to the plugin, so its
    roles are read first)."""
    granted = {"rolename": role, "priority": priority}
    create = {"command": "createClient", "username": username, "roles": [granted]}
    created = control.run([create])[0]
    if "error" not in created:
        return
    if "already exists" not in str(created["error"]):
        raise BrokerControlError(f"broker: createClient {username}: {created['error']}")
    found = control.run([{"command": "getClient", "username": username}])[0]
    roles = {r["rolename"] for r in found.get("data", {}).get("client", {}).get("roles", [])}
    if role not in roles:
        control.check([{"command": "addClientRole", "username": username, **granted}])
