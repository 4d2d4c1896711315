"""Bad traffic lands in quarantine with its reason and raw bytes, while a valid device's
readings keep flowing: malformed, oversize, forged, replayed, signed by an unknown device
certificate, published under another device's name, and stamped in the future.

The gateway writes to a schema of its own (tests.support.gateway.private_database): other
gateways on the stack's broker see the same messages, and their rows must not count here."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from certs.pki import PKI
from tests.support.gateway import (
    Device,
    count_rows,
    private_database,
    start_gateway,
    subscribed,
)
from tests.support.mqtt import close, connect, device_client
from tests.support.pki import TestPKI
from tests.support.processes import wait_until
from tracehub import db
from tracehub.config import Settings
from tracehub.envelope import sign_reading
from tracehub.reading import Reading

pytestmark = pytest.mark.integration

VALID = 1500


@pytest.fixture()
def private(stack: Settings) -> Iterator[tuple[Settings, dict[str, str]]]:
    """Settings pointing at a schema of the test's own, and the gateway's environment for it."""
    with private_database(stack) as (env, _):
        yield dataclasses.replace(stack, postgres_dsn=env["TRACEHUB_POSTGRES_DSN"]), env


def test_bad_traffic_is_quarantined_while_valid_traffic_flows(
    stack: Settings, private: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    own, env = private
    pki = PKI(stack.pki_dir)
    valid = Device(stack, pki, step=timedelta(milliseconds=100))
    mallory = Device(stack, pki)
    time.sleep(3.1)  # certificates are valid from a whole second
    foreign = TestPKI("Foreign")
    ghost = foreign.device(mallory.id)  # right name, certificate no CA of ours issued

    first = mallory.sign(1, 5.0)
    future = Reading(
        device=mallory.id,
        seq=2,
        ts=mallory.start + timedelta(days=1),
        kind="environment",
        data={"temperature_c": 5.0, "humidity_pct": 45.0},
        prev=mallory.prev,
    )
    forged = mallory.sign(3, 5.0, prev=mallory.prev)
    forged = forged[:-6] + (b"AAAAAA" if forged[-6:] != b"AAAAAA" else b"BBBBBB")
    envelopes = [valid.sign(seq, 4.0 + seq % 30 / 10) for seq in range(1, VALID + 1)]
    bad = {
        "malformed": b"\x00not a JWS\xff",
        "oversize": b"A" * (20 * 1024),
        "bad_signature": forged,
        "replay": mallory.sign(1, 9.9, prev="0" * 64),
        # The gateway looks signers up on the ledger: a certificate it has no record of (here
        # one no CA of ours issued) is a device not enrolled.
        "device_not_enrolled": sign_reading(
            Reading(
                device=mallory.id,
                seq=4,
                ts=mallory.start,
                kind="environment",
                data={"temperature_c": 5.0, "humidity_pct": 45.0},
                prev=mallory.prev,
            ),
            ghost.key,  # type: ignore[arg-type]
            ghost.cert,
        ),
        "identity_mismatch": envelopes[0],  # the valid device's reading on mallory's topic
        "clock_skew": sign_reading(future, mallory.key, mallory.cert),  # type: ignore[arg-type]
    }

    group, name = f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    log = tmp_path / "gateway.log"
    gateway = start_gateway(name, group, log, env=env)
    good_client, bad_client = device_client(stack, valid.id), device_client(stack, mallory.id)
    try:
        good_client.max_inflight_messages_set(1000)
        assert connect(good_client, stack) and connect(bad_client, stack)
        wait_until(lambda: subscribed(log), 60, "the gateway's subscription")
        bad_client.publish(mallory.topic, first, qos=1).wait_for_publish(5)
        started = time.monotonic()
        infos = []
        for i, envelope in enumerate(envelopes):
            infos.append(good_client.publish(valid.topic, envelope, qos=1))
            if i % 150 == 75:  # bad traffic interleaved with the valid stream
                for payload in bad.values():
                    bad_client.publish(mallory.topic, payload, qos=1)
        for info in infos:
            info.wait_for_publish(60)
        wait_until(
            lambda: (
                count_rows(own, "select count(*) from readings where device_id = %s", valid.id)
                >= VALID
            ),
            120,
            f"{VALID} valid readings stored",
        )
        elapsed = time.monotonic() - started
        rounds = len(range(75, VALID, 150))
        wait_until(
            lambda: (
                count_rows(own, "select count(*) from quarantine where device_id = %s", mallory.id)
                >= rounds * len(bad)
            ),
            60,
            "every bad message quarantined",
        )
    finally:
        close(good_client)
        close(bad_client)
        gateway.terminate()
        gateway.wait(30)

    print(f"{VALID} valid readings stored in {elapsed:.2f} s alongside {rounds * len(bad)} bad")
    # Every valid reading once; mallory's one valid reading, not its replay.
    assert count_rows(own, "select count(*) from readings where device_id = %s", valid.id) == VALID
    assert (
        count_rows(own, "select count(distinct seq) from readings where device_id = %s", valid.id)
        == VALID
    )
    with db.connect(own.postgres_dsn) as conn:
        stored = conn.execute(
            "select seq, envelope from readings where device_id = %s", (mallory.id,)
        ).fetchall()
        quarantined = conn.execute(
            "select reason, raw, detail from quarantine where device_id = %s", (mallory.id,)
        ).fetchall()
    assert [(seq, bytes(envelope)) for seq, envelope in stored] == [(1, first)]
    by_reason: dict[str, set[bytes]] = {}
    for reason, raw, detail in quarantined:
        assert detail, f"{reason} has no detail"
        by_reason.setdefault(reason, set()).add(bytes(raw))
    # Each kind of bad message is quarantined under its own reason, with the exact bytes sent.
    assert by_reason == {reason: {payload} for reason, payload in bad.items()}
    assert len(quarantined) == rounds * len(bad)
