"""The broker binds the MQTT client id to the certificate, and revocation reaches it at once.

Findings replayed against the stack's broker (the settings' TRACEHUB_MQTT_TLS_PORT): a device's
certificate took over another device's session by sending its client id; the gateway's client
id was predictable; a revoked device stayed connected until the broker restarted
(docs/security.md, docs/decisions/0025-client-id-and-revocation.md).
"""

from __future__ import annotations

import queue
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from certs.broker import BrokerEndpoint, cut_off_device
from certs.pki import PKI
from tests.support.broker import private_broker
from tests.support.gateway import Device, count_rows, start_gateway, subscribed
from tests.support.mqtt import admit_gateway, close, connect, device_client, service_files
from tests.support.processes import run_cli, wait_until
from tracehub import mqtt as tracehub_mqtt
from tracehub.acks import ack_topic
from tracehub.config import Settings

NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87
ADMINISTRATIVE_ACTION = 152  # 0x98: the broker's dynamic-security plugin disconnected it


class Watched:
    """A client under a chosen client id, recording what happens to its connection."""

    def __init__(self, settings: Settings, client_id: str, cert: Path, key: Path) -> None:
        self.settings = settings
        self.client = tracehub_mqtt.tls_client(
            client_id, ca_file=settings.pki_dir / "ca-bundle.pem", cert_file=cert, key_file=key
        )
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.disconnects: list[tuple[float, int]] = []
        c = self.client
        c.on_connect = lambda cl, u, f, reason, p: self.events.put(("connect", reason.value))
        c.on_subscribe = lambda cl, u, mid, codes, p: self.events.put(("suback", codes[0].value))
        c.on_publish = lambda cl, u, mid, reason, p: self.events.put(("puback", reason.value))
        c.on_message = lambda cl, u, message: self.messages.put(message)
        c.on_disconnect = lambda cl, u, f, reason, p: self.disconnects.append(
            (time.monotonic(), reason.value)
        )

    def start(self, *, persistent: bool = True) -> int:
        """Connect (a persistent session unless told otherwise); the CONNACK's reason, or -1
        if the TLS handshake or the connection failed."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 600 if persistent else 0
        try:
            self.client.connect(
                self.settings.mqtt_host,
                self.settings.mqtt_tls_port,
                keepalive=10,
                clean_start=not persistent,
                properties=properties,
            )
        except OSError:
            return -1
        self.client.loop_start()
        return self.expect("connect", timeout=5, default=-1)

    def expect(self, kind: str, timeout: float = 5, default: int | None = None) -> int:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                got, value = self.events.get(timeout=left)
            except queue.Empty:
                break
            if got == kind:
                return int(value)
        if default is not None:
            return default
        raise AssertionError(f"no {kind} within {timeout} s")

    def subscribe(self, topic: str) -> int:
        self.client.subscribe(topic, qos=1)
        return self.expect("suback")

    def publish(self, topic: str, payload: bytes) -> int:
        self.client.publish(topic, payload, qos=1)
        return self.expect("puback")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _device(pki: PKI) -> str:
    device_id = f"sec-{uuid.uuid4().hex[:12]}"
    pki.enrol_simulated_device(device_id)
    return device_id


def _as_device(settings: Settings, device_id: str, client_id: str | None = None) -> Watched:
    cert, key = PKI(settings.pki_dir).device_paths(device_id)
    return Watched(settings, client_id or device_id, cert, key)


@pytest.fixture()
def pki(stack: Settings) -> PKI:
    return PKI(stack.pki_dir)


def test_a_device_cannot_take_another_devices_session(stack: Settings, pki: PKI) -> None:
    victim_id, attacker_id = _device(pki), _device(pki)
    time.sleep(1.1)  # certificates are valid from the next whole second
    victim = _as_device(stack, victim_id)
    # The attacker sends the victim's client id and asks to resume its session.
    attacker = _as_device(stack, attacker_id, client_id=victim_id)
    gateway = Watched(stack, "any", *service_files(stack, admit_gateway(stack)[0]))
    try:
        assert victim.start() == 0 and victim.subscribe(ack_topic(victim_id)) == 1
        assert gateway.start(persistent=False) == 0
        assert attacker.start() == 0
        time.sleep(0.5)
        assert victim.disconnects == [], "the attacker's connection ended the victim's"
        # The attacker got a session of its own name: nothing queued for the victim reaches it,
        # and it still acts only as itself.
        assert gateway.publish(ack_topic(victim_id), b"for the victim") == 0
        assert victim.messages.get(timeout=5).payload == b"for the victim"
        assert attacker.messages.empty()
        topic = f"tracehub/v1/devices/{victim_id}/readings"
        assert attacker.publish(topic, b"as the victim") == NOT_AUTHORIZED
        # The ACL file grants subscriptions and checks each delivery: the victim's
        # acknowledgements still reach the victim only.
        attacker.subscribe(ack_topic(victim_id))
        assert gateway.publish(ack_topic(victim_id), b"again") == 0
        assert victim.messages.get(timeout=5).payload == b"again"
        with pytest.raises(queue.Empty):
            attacker.messages.get(timeout=1)
    finally:
        for client in (attacker, victim, gateway):
            client.stop()


def test_a_device_cannot_take_the_gateways_identity(stack: Settings, pki: PKI) -> None:
    consumer, _ = admit_gateway(stack)
    username = f"service:{consumer}"
    device_id = _device(pki)
    time.sleep(1.1)
    gateway = Watched(stack, username, *service_files(stack, consumer))
    attacker = _as_device(stack, device_id, client_id=username)
    try:
        assert gateway.start() == 0
        group = f"sec{uuid.uuid4().hex[:8]}"  # of this test alone
        assert gateway.subscribe(f"$share/{group}/tracehub/v1/devices/+/readings") == 1
        assert attacker.start() == 0
        time.sleep(0.5)
        assert gateway.disconnects == [], "a device ended the gateway's session"
        # The device has none of the gateway's rights under the gateway's client id: it may not
        # acknowledge, and what it subscribes to is not delivered to it (the ACL file checks
        # each delivery), while the gateway's share still comes to the gateway.
        assert attacker.publish(ack_topic(device_id), b"stored, trust me") == NOT_AUTHORIZED
        attacker.subscribe("tracehub/v1/devices/#")
        topic = f"tracehub/v1/devices/{device_id}/readings"
        assert attacker.publish(topic, b"a reading") == 0
        assert gateway.messages.get(timeout=5).payload == b"a reading"
        with pytest.raises(queue.Empty):
            attacker.messages.get(timeout=1)
    finally:
        attacker.stop()
        gateway.stop()


def test_two_gateway_processes_run_side_by_side(stack: Settings, tmp_path: Path) -> None:
    device = Device(stack, PKI(stack.pki_dir))
    time.sleep(3.1)  # the device's readings start two seconds after enrolment
    group = f"sec{uuid.uuid4().hex[:8]}"
    logs = [tmp_path / "gw-a.log", tmp_path / "gw-b.log"]
    gateways = [start_gateway(f"sec{uuid.uuid4().hex[:8]}", group, log) for log in logs]
    client = device_client(stack, device.id)
    try:
        assert connect(client, stack)
        wait_until(lambda: all(subscribed(log) for log in logs), 60, "both subscriptions")
        for seq in range(1, 41):
            client.publish(device.topic, device.sign(seq, 4.0), qos=1)
        stored = "select count(*) from readings where device_id = %s"
        wait_until(lambda: count_rows(stack, stored, device.id) == 40, 60, "40 readings stored")
    finally:
        close(client)
        for gateway in gateways:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(30)
    for log in logs:
        text = log.read_text()
        # Each connected and subscribed once: neither ended the other's session.
        assert text.count("subscribed as group") == 1, text[-2000:]
        ended = [line for line in text.splitlines() if "gateway: disconnected" in line]
        assert all("Normal disconnection" in line for line in ended), text[-2000:]  # its stop
        stopped = [line for line in text.splitlines() if "gateway stopped" in line]
        assert int(stopped[-1].split("received=")[1].split(",")[0]) > 0, text[-2000:]


def test_a_revoked_device_is_cut_off_at_once_and_gets_nothing_back(
    stack: Settings, pki: PKI
) -> None:
    device_id, bystander_id = _device(pki), _device(pki)
    time.sleep(1.1)
    gateway = Watched(stack, "any", *service_files(stack, admit_gateway(stack)[0]))
    device, bystander = _as_device(stack, device_id), _as_device(stack, bystander_id)
    try:
        assert gateway.start(persistent=False) == 0
        assert device.start() == 0 and device.subscribe(ack_topic(device_id)) == 1
        assert bystander.start() == 0
        started = time.monotonic()
        revoke = run_cli("devices", "revoke", device_id, "--reason", "keyCompromise", "--no-ledger")
        returned = time.monotonic()
        assert revoke.returncode == 0, revoke.stdout + revoke.stderr
        wait_until(lambda: bool(device.disconnects), 2, "the revoked device disconnected")
        when, reason = device.disconnects[0]
        # Cut off by the broker on the command's word, not by a restart: the reason says so,
        # it happened while the command ran, and other clients stay connected.
        assert reason == ADMINISTRATIVE_ACTION
        assert started < when <= returned
        assert bystander.disconnects == []
        device.client.loop_stop()

        # Until the broker's next start loads the CRL, the certificate still completes a
        # handshake; resuming its persistent session gives it nothing: no publish, no
        # subscription, no delivery of what its old subscription matches.
        again = _as_device(stack, device_id)
        connected = again.start()
        assert connected in (0, -1)  # -1: refused, once a restart has loaded the CRL
        if connected == 0:
            topic = f"tracehub/v1/devices/{device_id}/readings"
            assert again.publish(topic, b"after revocation") == NOT_AUTHORIZED
            assert again.subscribe(ack_topic(device_id)) == NOT_AUTHORIZED
            gateway.publish(ack_topic(device_id), b"not for a revoked device")
            with pytest.raises(queue.Empty):
                again.messages.get(timeout=1)
        again.stop()
    finally:
        for client in (device, bystander, gateway):
            client.stop()


def test_a_revoked_device_is_refused_once_the_broker_restarts(
    stack: Settings, pki: PKI, tmp_path: Path
) -> None:
    """The broker loads the CRL at start: a revoked certificate's handshake is refused, with
    or without a persistent session (a broker of the test's own, restarted)."""
    device_id = _device(pki)
    time.sleep(1.1)
    with private_broker(tmp_path, stack) as broker:
        settings = broker.settings(stack)
        consumer, _ = admit_gateway(settings)
        device = _as_device(settings, device_id)
        assert device.start() == 0
        pki.revoke_device(device_id)
        cut_off_device(pki, BrokerEndpoint.of(settings), device_id)
        wait_until(lambda: bool(device.disconnects), 2, "the revoked device disconnected")
        device.client.loop_stop()
        broker.stop()
        broker.start()
        for persistent in (True, False):
            again = _as_device(settings, device_id)
            assert again.start(persistent=persistent) == -1
            again.client.loop_stop()
        # The restart kept everyone else's rights: a gateway admitted before it still reads.
        gateway = Watched(settings, "any", *service_files(settings, consumer))
        assert gateway.start(persistent=False) == 0
        assert gateway.subscribe("tracehub/v1/devices/#") == 1
        gateway.stop()


def test_an_absent_clients_queue_is_bounded(stack: Settings, pki: PKI, tmp_path: Path) -> None:
    """The queue the broker keeps for a session whose client is away is bounded per client
    (max_queued_messages; 400,000 on the stack, 50 here): what overflows is dropped, not held
    in the broker's memory, and the broker stays up. The device still keeps each reading until
    the hub acknowledges it stored (docs/acknowledgement.md), so nothing valid is lost."""
    device_id = _device(pki)
    consumer, _ = admit_gateway(stack)  # issued before the private broker starts: it admits it
    time.sleep(1.1)  # certificates are valid from the next whole second
    topic = f"tracehub/v1/devices/{device_id}/readings"
    with private_broker(tmp_path, stack, env={"MQTT_MAX_QUEUED_MESSAGES": "50"}) as broker:
        settings = broker.settings(stack)
        gateway = Watched(settings, "any", *service_files(settings, consumer))
        assert gateway.start() == 0 and gateway.subscribe(topic) == 1
        gateway.stop()  # away; its persistent session keeps the subscription
        device = _as_device(settings, device_id)
        assert device.start(persistent=False) == 0
        for i in range(300):
            device.publish(topic, b"%d" % i)
        device.stop()
        back = Watched(settings, "any", *service_files(settings, consumer))
        assert back.start() == 0  # resumes the session: the queue is delivered
        received: list[int] = []
        while True:
            try:
                received.append(int(back.messages.get(timeout=2).payload))
            except queue.Empty:
                break
        back.stop()
        assert broker.process is not None and broker.process.poll() is None
    assert len(received) == 50, f"the bound is 50 queued messages, {len(received)} came"
    assert received == list(range(50)), "the oldest are kept, in order; the overflow dropped"
