"""The agent's side of the end-to-end acknowledgement, on a real spool: what the hub accounts for
leaves the spool, what it lists as missing is resent or, when the spool no longer has it,
answered with a signed dropped-range report giving the recorded reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.acks import AckOutcome, AckPolicy, HubAcks
from edge.spool import Spool
from tests.support.pki import T0, Issued, TestPKI
from tracehub.acks import HubAck
from tracehub.dropped import DroppedRange, sign_dropped, verify_dropped
from tracehub.verify import InMemoryDirectory, TrustStore

DEVICE = "dev-1"
POLICY = AckPolicy(resend_after_s=30, max_resend_after_s=120, missing_grace_s=5)
#: Spool and acknowledgement times, in seconds after T0 (certificates are valid then).
AT = T0.timestamp()


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


@pytest.fixture(scope="module")
def device(pki: TestPKI) -> Issued:
    return pki.device(DEVICE)


def _acks(tmp_path: Path, device: Issued, max_readings: int = 1000) -> tuple[Spool, HubAcks]:
    def sign(report: DroppedRange) -> bytes:
        return sign_dropped(report, device.key, device.cert)

    spool = Spool(tmp_path / "spool.sqlite3", max_readings=max_readings)
    return spool, HubAcks(spool, DEVICE, sign, POLICY)


def _append(spool: Spool, n: int) -> None:
    for _ in range(n):
        spool.append(DEVICE, lambda seq, prev: f"env|{seq}".encode(), now=AT)


def _send_all(spool: Spool, now: float) -> None:
    readings = spool.pending(limit=1000, now=now)
    spool.mark_sent(readings, resend_after_s=30, max_resend_after_s=120, now=now)


def _ack(through: int, *missing: tuple[int, int], device: str = DEVICE) -> bytes:
    return HubAck(device, through, tuple(missing)).to_json_bytes()


def _reports(envelopes: list[bytes], pki: TestPKI, device: Issued) -> list[tuple[int, int, str]]:
    """The reports, each verified with the device's certificate as the gateway does."""
    trust = TrustStore(pki.roots, pki.intermediates, [pki.crl()])
    directory = InMemoryDirectory([device.cert])
    reports = [verify_dropped(e, trust, directory, topic_device_id=DEVICE) for e in envelopes]
    return sorted((v.report.first, v.report.last, v.report.reason) for v in reports)


def test_what_the_hub_accounts_for_leaves_the_spool(tmp_path: Path, device: Issued) -> None:
    spool, acks = _acks(tmp_path, device)
    _append(spool, 10)
    _send_all(spool, AT)
    assert acks.on_message(_ack(6, (2, 3)), now=AT + 1).reports == []
    assert spool.held(DEVICE, 1, 10) == [2, 3, 7, 8, 9, 10]
    assert (acks.stats.settled, acks.stats.last_through, acks.stats.last_missing) == (4, 6, 2)
    # Just sent: a hole may be another gateway that has not committed yet; not resent yet...
    assert spool.pending(now=AT + 2) == []
    # ...but sooner than the others.
    assert [r.seq for r in spool.pending(now=AT + 5)] == [2, 3]


def test_missing_readings_are_resent_after_the_grace(tmp_path: Path, device: Issued) -> None:
    spool, acks = _acks(tmp_path, device)
    _append(spool, 10)
    _send_all(spool, AT)
    assert acks.on_message(_ack(10, (4, 5)), now=AT + 6).reports == []
    assert acks.stats.resent_missing == 2
    assert [r.seq for r in spool.pending(now=AT + 6)] == [4, 5]
    assert [r.seq for r in spool.pending(now=AT + 29)] == [4, 5]


def test_missing_readings_the_spool_dropped_are_reported_signed(
    tmp_path: Path, pki: TestPKI, device: Issued
) -> None:
    spool, acks = _acks(tmp_path, device, max_readings=5)
    _append(spool, 8)  # 1..3 dropped to make room
    _send_all(spool, AT)
    reports = acks.on_message(_ack(8, (1, 3)), now=AT + 10).reports
    assert _reports(reports, pki, device) == [(1, 3, "overflow")]
    # Not repeated while the hub has had no time to record it; repeated after that.
    assert acks.on_message(_ack(8, (1, 3)), now=AT + 12).reports == []
    assert len(acks.on_message(_ack(8, (1, 3)), now=AT + 25).reports) == 1


def test_readings_with_no_record_of_dropping_are_reported_unavailable(
    tmp_path: Path, pki: TestPKI, device: Issued
) -> None:
    spool, acks = _acks(tmp_path, device, max_readings=3)
    _append(spool, 6)  # 1..3 dropped (overflow); 4..6 held
    spool.settle(DEVICE, [(4, 4)])  # as an earlier acknowledgement would have
    reports = acks.on_message(_ack(6, (2, 5)), now=AT + 10).reports
    assert _reports(reports, pki, device) == [(2, 3, "overflow"), (4, 4, "unavailable")]


def test_foreign_and_malformed_acknowledgements_change_nothing(
    tmp_path: Path, device: Issued
) -> None:
    spool, acks = _acks(tmp_path, device)
    _append(spool, 3)
    assert acks.on_message(_ack(3, device="dev-2")) == AckOutcome()
    assert (
        acks.on_message(b'{"v":1,"device":"dev-1","through":3,"missing":[[3,1]]}').accounted == []
    )
    assert acks.on_message(b"not json").reports == []
    assert spool.depth() == 3
    assert acks.stats.bad_acks == 3
