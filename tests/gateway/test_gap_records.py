"""The gateway's records of holes against the real PostgreSQL: a hole is missing (and asked for
again) until its readings arrive or the device reports them dropped; only what a report covers
is lost, whichever comes first, and what the hub acknowledges follows from that, once per device
per interval."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.acks import AckPublisher
from ingest.store import AckState, DroppedRow, GapState, ReadingStore, VerifiedRow
from tests.support.db import connector, migrated_schema
from tracehub import db
from tracehub.acks import HubAck, ack_topic
from tracehub.config import Settings
from tracehub.reading import GENESIS_PREV

pytestmark = pytest.mark.integration

CERT = hashlib.sha256(b"test certificate").hexdigest()
T0 = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def schema(stack: Settings) -> Iterator[str]:
    with migrated_schema(stack.postgres_dsn) as name:
        yield name


@pytest.fixture()
def store(stack: Settings, schema: str) -> Iterator[ReadingStore]:
    with ReadingStore(connector(stack.postgres_dsn, schema)) as s:
        yield s


class Device:
    """Readings 1..n of a fresh device, linked, stored in whatever order a test picks."""

    def __init__(self, n: int) -> None:
        self.id = f"g-{secrets.token_hex(5)}"
        self.rows: dict[int, VerifiedRow] = {}
        prev = GENESIS_PREV
        for seq in range(1, n + 1):
            envelope = f"{self.id}.{seq}.{secrets.token_hex(8)}".encode()
            digest = hashlib.sha256(envelope).hexdigest()
            self.rows[seq] = VerifiedRow(
                device_id=self.id,
                seq=seq,
                ts=T0 + timedelta(seconds=seq),
                kind="environment",
                data={"temperature_c": 4.0, "humidity_pct": 50.0},
                loc=None,
                prev_hash=prev,
                reading_hash=digest,
                envelope=envelope,
                certificate_sha256=CERT,
                received_at=datetime.now(UTC),
            )
            prev = digest

    def store(self, store: ReadingStore, *seqs: int) -> None:
        store.store_verified([self.rows[s] for s in seqs])

    def report(self, first: int, last: int, reason: str = "overflow") -> DroppedRow:
        envelope = f"report.{self.id}.{first}.{last}.{secrets.token_hex(4)}".encode()
        return DroppedRow(
            report_hash=hashlib.sha256(envelope).hexdigest(),
            device_id=self.id,
            first_seq=first,
            last_seq=last,
            reason=reason,
            reported_at=datetime.now(UTC),
            received_at=datetime.now(UTC),
            certificate_sha256=CERT,
            envelope=envelope,
        )


def _ack(store: ReadingStore, device: Device) -> AckState:
    (state,) = store.ack_states([device.id])
    return state


def test_holes_open_shrink_split_and_close_as_readings_arrive(store: ReadingStore) -> None:
    device = Device(12)
    device.store(store, 1, 2)
    assert _ack(store, device) == AckState(device.id, 2, [])
    device.store(store, 9, 10)  # 3..8 never arrived (yet)
    assert _ack(store, device) == AckState(device.id, 10, [(3, 8)])
    device.store(store, 5)  # splits the hole
    assert _ack(store, device).missing == [(3, 4), (6, 8)]
    device.store(store, 3, 8, 12)  # shrinks both; a new hole at 11
    assert _ack(store, device) == AckState(device.id, 12, [(4, 4), (6, 7), (11, 11)])
    device.store(store, 4, 6, 7, 11)
    assert _ack(store, device) == AckState(device.id, 12, [])
    assert store.gap_state(device.id) == GapState([], [])
    # A duplicate changes nothing; a device the hub never stored is not acknowledged.
    device.store(store, 5)
    assert _ack(store, device) == AckState(device.id, 12, [])
    assert store.ack_states(["never-seen"]) == []


def test_a_hole_is_lost_exactly_where_the_device_reported_it(store: ReadingStore) -> None:
    device = Device(20)
    device.store(store, 1, 2, 20)  # hole 3..19
    assert store.record_dropped([device.report(5, 9)]) == 1
    assert store.gap_state(device.id) == GapState(missing=[(3, 4), (10, 19)], lost=[(5, 9)])
    # The acknowledgement asks for what is missing, not for what is lost.
    assert _ack(store, device).missing == [(3, 4), (10, 19)]
    # Readings that do arrive are stored, even inside a reported range.
    device.store(store, 3, 4, 9)
    assert store.gap_state(device.id) == GapState(missing=[(10, 19)], lost=[(5, 8)])


def test_a_report_before_the_hole_is_seen_applies_when_it_is(store: ReadingStore) -> None:
    device = Device(10)
    device.store(store, 1)
    store.record_dropped([device.report(2, 4, "expired")])
    assert store.gap_state(device.id) == GapState([], [])  # no hole yet: nothing lost
    device.store(store, 6)  # hole 2..5
    assert store.gap_state(device.id) == GapState(missing=[(5, 5)], lost=[(2, 4)])


def test_a_report_of_stored_readings_loses_nothing(store: ReadingStore) -> None:
    device = Device(5)
    device.store(store, 1, 2, 3, 4, 5)
    report = device.report(1, 5)
    assert store.record_dropped([report, report]) == 1  # and once only
    assert store.gap_state(device.id) == GapState([], [])
    assert _ack(store, device) == AckState(device.id, 5, [])


def test_the_lost_readings_view_names_the_report(
    stack: Settings, schema: str, store: ReadingStore
) -> None:
    device = Device(8)
    device.store(store, 1, 8)
    report = device.report(3, 4, "overflow")
    store.record_dropped([report])
    with db.connect(stack.postgres_dsn, options=f"-c search_path={schema}") as conn:
        rows = conn.execute(
            "SELECT first_seq, last_seq, reason, report_hash FROM lost_readings"
            " WHERE device_id = %s",
            (device.id,),
        ).fetchall()
    assert rows == [(3, 4, "overflow", report.report_hash)]


def test_devices_with_holes_are_found_for_asking_again(store: ReadingStore) -> None:
    complete, holey = Device(3), Device(3)
    complete.store(store, 1, 2, 3)
    holey.store(store, 1, 3)
    found = store.devices_with_holes(datetime.now(UTC) - timedelta(minutes=5), limit=10_000)
    assert holey.id in found and complete.id not in found


def test_acknowledgements_are_batched_per_device_and_holes_asked_again(
    stack: Settings, schema: str, store: ReadingStore
) -> None:
    sent: list[tuple[str, bytes]] = []

    def publish(topic: str, payload: bytes) -> bool:
        sent.append((topic, payload))
        return True

    connect = connector(stack.postgres_dsn, schema)
    acks = AckPublisher(publish, lambda: ReadingStore(connect))
    holey, quiet = Device(6), Device(2)
    holey.store(store, 1, 2, 6)
    quiet.store(store, 1, 2)
    for _ in range(3):  # three ingest groups in one interval: one acknowledgement each
        acks.note([holey.id, quiet.id])
    assert acks.flush(store) == 2
    assert sorted(sent) == sorted(
        [
            (ack_topic(holey.id), HubAck(holey.id, 6, ((3, 5),)).to_json_bytes()),
            (ack_topic(quiet.id), HubAck(quiet.id, 2).to_json_bytes()),
        ]
    )
    sent.clear()
    assert acks.flush(store) == 0  # nothing new arrived
    # Asking again: the devices with missing readings hear about them with nothing noted.
    acks.flush(store, ask_again=True)
    assert (ack_topic(holey.id), HubAck(holey.id, 6, ((3, 5),)).to_json_bytes()) in sent
    assert all(topic != ack_topic(quiet.id) for topic, _ in sent)
