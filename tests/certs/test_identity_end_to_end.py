"""Device identity end to end, on the real broker and the real ledger: an enrolled device's
signed readings verify from public material (CA bundle, CRL, certificates found on the ledger);
after revocation the broker refuses the device and the verifier rejects its later readings with
reason `revoked`, while its earlier readings still verify."""

from __future__ import annotations

import queue
import time
import uuid
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives import serialization

from certs.pki import PKI
from certs.registry import LedgerCertificateDirectory
from tests.support.mqtt import close, connect, device_client, gateway_client
from tests.support.processes import run_cli, wait_until
from tracehub.config import Settings
from tracehub.envelope import reading_hash, sign_reading
from tracehub.reading import GENESIS_PREV, Reading
from tracehub.verify import (
    Reason,
    TrustStore,
    VerificationError,
    load_pem_crls,
    verify_envelope,
)

pytestmark = pytest.mark.integration


def _cli(*args: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def _now() -> datetime:
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def test_revoked_device_is_refused_and_its_later_readings_rejected(
    stack: Settings, directory: LedgerCertificateDirectory
) -> None:
    pki = PKI(stack.pki_dir)
    device_id = f"test-{uuid.uuid4().hex[:12]}"
    _cli("devices", "enrol", device_id)
    _, key_path = pki.device_paths(device_id)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    certificate = pki.device(device_id)[0].certificate
    trust = TrustStore.from_pem_files(pki.ca_bundle_path, pki.crl_path)
    topic = f"tracehub/v1/devices/{device_id}/readings"

    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    gateway = gateway_client(stack)
    gateway.on_message = lambda c, u, message: received.put(message)
    subscribed: queue.Queue[object] = queue.Queue()
    gateway.on_subscribe = lambda *args: subscribed.put(args)
    device = device_client(stack, device_id)
    # Recorded, not polled: paho reconnects on its own, and until the broker's next start the
    # handshake of the revoked certificate still succeeds (it then has no rights).
    cut: list[int] = []
    device.on_disconnect = lambda c, u, f, reason, p: cut.append(reason.value)
    try:
        assert connect(gateway, stack) and connect(device, stack)
        gateway.subscribe("tracehub/v1/devices/+/readings", qos=1)
        subscribed.get(timeout=5)

        time.sleep(1.1)  # the certificate's validity starts at a whole second
        first = sign_reading(
            Reading(
                device=device_id,
                seq=1,
                ts=_now(),
                kind="environment",
                data={"temperature_c": 4.2, "humidity_pct": 61.5},
                prev=GENESIS_PREV,
            ),
            key,  # type: ignore[arg-type]
            certificate,
        )
        device.publish(topic, first, qos=1).wait_for_publish(5)
        message = received.get(timeout=5)
        verified = verify_envelope(message.payload, trust, directory, topic_device_id=device_id)
        assert verified.reading.seq == 1
        assert verified.fingerprint == pki.device(device_id)[0].fingerprint_sha256

        time.sleep(1.1)  # revocation dates have whole seconds too
        _cli("devices", "revoke", device_id, "--reason", "cessationOfOperation")

        # Revocation has the broker disconnect the device (and then load the new CRL), so the
        # connection opened before it is cut at once; a reading signed after the revocation that
        # reaches the hub any other way is caught by the verifier.
        wait_until(lambda: bool(cut), 2, "the revoked device's connection cut")
        assert cut[0] == 152  # MQTT 5: administrative action
        time.sleep(1.1)
        second = sign_reading(
            Reading(
                device=device_id,
                seq=2,
                ts=_now(),
                kind="environment",
                data={"temperature_c": 4.3, "humidity_pct": 61.0},
                prev=reading_hash(first),
            ),
            key,  # type: ignore[arg-type]
            certificate,
        )
        trust.replace_crls(load_pem_crls(pki.crl_path.read_bytes()))
        with pytest.raises(VerificationError) as rejected:
            verify_envelope(second, trust, directory, topic_device_id=device_id)
        assert rejected.value.reason is Reason.REVOKED
        # A reading signed before the revocation (not a key compromise) still verifies.
        assert verify_envelope(first, trust, directory, topic_device_id=device_id).reading.seq == 1
    finally:
        close(device)
        close(gateway)

    # A new connection with the revoked certificate gets nothing: refused once the broker has
    # loaded the CRL (at its start), and until then refused every publish.
    again = device_client(stack, device_id)
    if connect(again, stack):
        refused: queue.Queue[int] = queue.Queue()
        again.on_publish = lambda c, u, mid, reason, p: refused.put(reason.value)
        again.publish(topic, b"after revocation", qos=1)
        try:
            assert refused.get(timeout=5) == 135  # MQTT 5: not authorized
        finally:
            close(again)
