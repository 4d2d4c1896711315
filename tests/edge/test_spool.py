"""The edge spool: sequence and hash chain assigned durably, ack deletes, bounded with a policy."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from edge.spool import Spool, SpoolFullError, WhenFull
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


def test_pending_in_order_and_ack_removes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    for _ in range(5):
        spool.append("dev", _builder)
    assert [r.seq for r in spool.pending(limit=3)] == [1, 2, 3]
    assert [r.seq for r in spool.pending(limit=3, exclude={("dev", 1), ("dev", 2)})] == [3, 4, 5]
    assert spool.ack([("dev", 1), ("dev", 2), ("dev", 99)]) == 2
    assert [r.seq for r in spool.pending()] == [3, 4, 5]
    assert spool.depth() == 3


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


def test_full_spool_can_refuse_new_readings(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_readings=2, when_full=WhenFull.REFUSE_NEW)
    spool.append("dev", _builder)
    spool.append("dev", _builder)
    with pytest.raises(SpoolFullError):
        spool.append("dev", _builder)
    assert [r.seq for r in spool.pending()] == [1, 2]
    assert spool.counters() == {"refused_full": 1}
    # A refused reading took no sequence number: the chain has no gap.
    spool.ack([("dev", 1)])
    assert spool.append("dev", _builder).seq == 3


def test_expiry_by_age_is_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_age_s=60)
    spool.append("dev", _builder, now=1000.0)
    spool.append("dev", _builder, now=1100.0)
    assert spool.expire(now=1100.0) == 1
    assert [r.seq for r in spool.pending()] == [2]
    assert spool.counters() == {"expired": 1}


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
