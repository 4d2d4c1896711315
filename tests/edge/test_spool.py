"""The edge spool: sequence and hash chain assigned durably, kept until the hub's acknowledgement
(the broker's only marks a reading sent), bounded with a policy, drops recorded as ranges."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from edge.spool import Drop, Spool, SpoolFullError, WhenFull
from tracehub.envelope import reading_hash
from tracehub.reading import GENESIS_PREV


def _builder(seq: int, prev: str) -> bytes:
    # A stand-in envelope that records what it was built from; hashing it is what the chain uses.
    return f"env|{seq}|{prev}".encode()


def test_sequence_and_chain_continue_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path)
    first = spool.append("dev-1", _builder)
    second = spool.append("dev-1", _builder)
    other = spool.append("dev-2", _builder)
    spool.close()

    spool = Spool(path)
    third = spool.append("dev-1", _builder)
    assert [first.seq, second.seq, third.seq, other.seq] == [1, 2, 3, 1]
    assert first.envelope == f"env|1|{GENESIS_PREV}".encode()
    assert second.envelope == f"env|2|{reading_hash(first.envelope)}".encode()
    assert third.envelope == f"env|3|{reading_hash(second.envelope)}".encode()
    assert spool.depth() == 4
    assert spool.last("dev-1") == (3, reading_hash(third.envelope))


def test_pending_in_order_and_settle_removes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    for _ in range(5):
        spool.append("dev", _builder)
    assert [r.seq for r in spool.pending(limit=3)] == [1, 2, 3]
    assert [r.seq for r in spool.pending(limit=3, exclude={("dev", 1), ("dev", 2)})] == [3, 4, 5]
    assert spool.settle("dev", [(1, 2), (99, 100)]) == 2
    assert [r.seq for r in spool.pending()] == [3, 4, 5]
    assert spool.depth() == 3


def _sent(spool: Spool, seqs: list[int], now: float, after: float = 30.0) -> int:
    readings = [r for r in spool.pending(limit=1000, now=now) if r.seq in seqs]
    return spool.mark_sent(readings, resend_after_s=after, max_resend_after_s=4 * after, now=now)


def test_a_broker_ack_only_marks_sent_until_the_hub_settles(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    for _ in range(4):
        spool.append("dev", _builder, now=1000.0)
    assert _sent(spool, [1, 2, 3], now=1000.0) == 3
    # Sent readings stay in the spool but are not due again until their resend time.
    assert (spool.depth(), spool.unsent()) == (4, 1)
    assert [r.seq for r in spool.pending(now=1010.0)] == [4]
    due = spool.pending(now=1031.0)
    assert [(r.seq, r.sent) for r in due] == [(4, False), (1, True), (2, True), (3, True)]
    # Each attempt doubles the wait, up to the maximum.
    assert _sent(spool, [1], now=1031.0) == 1
    assert [r.seq for r in spool.pending(now=1090.0)] == [4, 2, 3]
    assert [r.seq for r in spool.pending(now=1092.0)] == [4, 2, 3, 1]
    # The hub's acknowledgement removes them; the counts follow.
    assert spool.settle("dev", [(1, 2)]) == 2
    assert (spool.depth(), spool.unsent()) == (2, 1)
    spool.close()
    reopened = Spool(tmp_path / "s.sqlite3")
    assert (reopened.depth(), reopened.unsent()) == (2, 1)


def test_missing_readings_and_a_new_connection_make_sent_ones_due(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    for _ in range(6):
        spool.append("dev", _builder, now=1000.0)
    _sent(spool, [1, 2, 3], now=1000.0)
    _sent(spool, [4, 5], now=1009.0)
    # Listed missing: each is resent 5 s after it was sent, not 30 s after.
    assert spool.resend("dev", [(2, 5)], grace_s=5.0) == 4
    assert [r.seq for r in spool.pending(now=1010.0)] == [6, 2, 3]
    assert [r.seq for r in spool.pending(now=1014.0)] == [6, 2, 3, 4, 5]
    assert spool.resend_all() == 5  # a new connection sends everything unsettled at once
    assert [r.seq for r in spool.pending(now=1010.0)] == [1, 2, 3, 4, 5, 6]
    assert spool.held("dev", 2, 4) == [2, 3, 4]


def test_a_failed_build_assigns_no_sequence_number(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    spool.append("dev", _builder)

    def broken(seq: int, prev: str) -> bytes:
        raise RuntimeError("signer unavailable")

    with pytest.raises(RuntimeError):
        spool.append("dev", broken)
    assert spool.append("dev", _builder).seq == 2
    assert spool.depth() == 2


def test_full_spool_drops_oldest_and_counts_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_readings=3)
    for _ in range(5):
        spool.append("dev", _builder)
    assert [r.seq for r in spool.pending()] == [3, 4, 5]
    assert spool.counters() == {"dropped_oldest": 2}
    # The drops are one range, to be reported to the hub.
    (drop,) = spool.unreported()
    assert (drop.device, drop.first, drop.last, drop.reason) == ("dev", 1, 2, "overflow")
    spool.mark_reported(drop)
    assert spool.unreported() == []
    spool.append("dev", _builder)  # drops 3: a new range, the first one is reported already
    assert [(d.first, d.last) for d in spool.unreported()] == [(3, 3)]
    assert spool.drop_reasons("dev", 2, 10) == [(2, 2, "overflow"), (3, 3, "overflow")]


def test_a_report_of_a_range_that_grew_meanwhile_does_not_close_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_readings=1)
    for _ in range(3):
        spool.append("dev", _builder)
    (reported,) = spool.unreported()
    spool.append("dev", _builder)  # 3 dropped: the unreported range 1..2 becomes 1..3
    spool.mark_reported(reported)
    assert spool.unreported() == [Drop("dev", 1, 3, "overflow", spool.unreported()[0].at)]


def test_full_spool_can_refuse_new_readings(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_readings=2, when_full=WhenFull.REFUSE_NEW)
    spool.append("dev", _builder)
    spool.append("dev", _builder)
    with pytest.raises(SpoolFullError):
        spool.append("dev", _builder)
    assert [r.seq for r in spool.pending()] == [1, 2]
    assert spool.counters() == {"refused_full": 1}
    # A refused reading took no sequence number: the chain has no gap.
    spool.settle("dev", [(1, 1)])
    assert spool.append("dev", _builder).seq == 3


def test_expiry_by_age_is_counted_and_recorded(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_age_s=60)
    spool.append("dev", _builder, now=1000.0)
    spool.append("dev", _builder, now=1000.0)
    spool.append("dev", _builder, now=1100.0)
    _sent(spool, [1], now=1001.0)  # sent but never acknowledged by the hub: expires too
    assert spool.expire(now=1100.0) == 2
    assert [r.seq for r in spool.pending(now=2000.0)] == [3]
    assert spool.counters() == {"expired": 2}
    assert (spool.depth(), spool.unsent()) == (1, 1)
    assert [(d.first, d.last, d.reason) for d in spool.unreported()] == [(1, 2, "expired")]


def test_a_spool_from_before_the_hub_acknowledgement_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "create table chain (device text primary key, seq integer not null, hash text not null);"
        "create table outbox (device text not null, seq integer not null, envelope blob not null,"
        " created real not null, primary key (device, seq)) without rowid;"
        "create index outbox_created on outbox (created);"
        "create table counters (name text primary key, value integer not null);"
        "insert into chain values ('dev', 2, 'h');"
        "insert into outbox values ('dev', 1, x'01', 1.0), ('dev', 2, x'02', 2.0);"
    )
    old.commit()
    old.close()
    spool = Spool(path)
    assert (spool.depth(), spool.unsent()) == (2, 2)
    assert [(r.seq, r.sent) for r in spool.pending()] == [(1, False), (2, False)]
    assert spool.append("dev", _builder).seq == 3


def _append_forever(path: str, ready: multiprocessing.synchronize.Event) -> None:
    spool = Spool(Path(path))
    ready.set()
    while True:
        spool.append("dev", _builder)


def test_kill_9_while_appending_loses_no_committed_reading(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_append_forever, args=(str(path), ready))
    child.start()
    assert ready.wait(30)
    time.sleep(0.5)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)

    spool = Spool(path)
    readings = spool.pending(limit=1_000_000)
    assert readings, "the child appended nothing"
    # Every stored reading is intact and chained; the chain head is the last stored reading.
    prev = GENESIS_PREV
    for expected_seq, reading in enumerate(readings, start=1):
        assert reading.seq == expected_seq
        assert reading.envelope == f"env|{expected_seq}|{prev}".encode()
        prev = reading_hash(reading.envelope)
    assert spool.last("dev") == (readings[-1].seq, prev)
    assert spool.append("dev", _builder).seq == readings[-1].seq + 1
