"""The gateway process: ingest, acknowledge, batch, anchor — four loops over one durable store.

- Ingest: deliveries from the shared subscription are checked (gateway.checks), stored in one
  transaction per drained group, rejects and replays quarantined, and only then acknowledged;
  devices' signed dropped-range reports arrive on the same subscription and are recorded. A
  group whose database connection was lost is written again once a server takes writes
  (gateway.reconnect).
- Acknowledge: the devices of each committed group are told how far the hub has stored their
  readings, at most once per device per `ack_interval_s` (gateway.acks, docs/acknowledgement.md).
- Batch: every `batch_max_age_s`, or as soon as `batch_max_readings` wait, the oldest unbatched
  readings are sealed into a batch (Merkle root over their hashes, outbox entry, one
  transaction) and the batch object is put on IPFS. The store, not memory, says what is
  unbatched, so a restarted gateway seals what its predecessor stored.
- Anchor: outbox entries are anchored on the ledger (AnchorBatch); a batch the ledger already
  has (re-submission after a crash) is confirmed from the ledger instead. Failures back off.

With a ledger registry cache (the process always has one), a fifth loop warms it with the
certificates of recently seen devices and refreshes it (certs.registry_cache, decision 0024).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import setproctitle

from certs.registry_cache import RegistryCache
from gateway import metrics
from gateway.acks import AckPublisher
from gateway.checks import (
    REGISTRY_UNAVAILABLE,
    Accepted,
    AcceptedDrop,
    Rejected,
    check_dropped,
    check_message,
    is_dropped_report,
)
from gateway.consumer import AlertHook, Consumer, Delivery, drain
from gateway.reconnect import until_committed
from ingest.store import (
    BatchConflictError,
    BatchRecord,
    DroppedRow,
    QuarantineRow,
    ReadingStore,
    StoreResult,
    VerifiedRow,
)
from tracehub.anchoring import submit_anchor
from tracehub.batch import encode_batch, read_header
from tracehub.errors import ConflictError
from tracehub.ipfs import ContentStore, IPFSError
from tracehub.ledger import Contract, LedgerError
from tracehub.merkle import MerkleTree
from tracehub.verify import CertificateDirectory, TrustStore, load_pem_crls

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewaySettings:
    batch_max_readings: int = 5000
    batch_max_age_s: float = 2.0
    ingest_max_messages: int = 2000
    ingest_wait_s: float = 0.05
    ingest_linger_s: float = 0.1
    max_future_skew_s: float = 300.0
    anchor_retry_s: tuple[float, float] = (1.0, 60.0)
    anchor_lease: timedelta = timedelta(seconds=30)
    # The anchor loop is woken by this gateway's seals; between them it looks at the outbox
    # this often, for other gateways' batches, retries come due and leases run out.
    anchor_poll_s: float = 1.0
    crl_path: Path | None = None
    crl_check_s: float = 10.0
    ack_interval_s: float = 0.2  # end-to-end acknowledgements: at most one per device per this
    metrics_refresh_s: float = 5.0  # between reads of the store's backlog (gateway.metrics)
    silent_after: timedelta = timedelta(minutes=10)  # a device seen today, quiet this long


@dataclass
class GatewayStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    gaps: int = 0
    chain_breaks: int = 0
    dropped_reports: int = 0
    acks_published: int = 0
    batches_sealed: int = 0
    batches_anchored: int = 0
    anchor_failures: int = 0


class BatchRootMismatchError(ConflictError):
    """A sealed batch's stored envelopes no longer give the root its seal recorded."""


def new_batch_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"


class Gateway:
    """Runs the four loops until `stop()`."""

    registry_warm_s = 3600.0  # warm the registry cache with devices seen in this window

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        consumer: Consumer,
        trust: TrustStore,
        directory: CertificateDirectory,
        store_factory: Callable[[], ReadingStore],
        ipfs: ContentStore,
        ledger: Contract,
        alert_hooks: Sequence[AlertHook] = (),
        block_lookup: Contract | None = None,
        channel: str = "trace",
        registry: RegistryCache | None = None,
    ) -> None:
        """``registry``: the ledger's device registry, refreshed by a loop of its own; pass it
        as ``directory`` too, so only enrolled certificates are accepted."""
        self.settings = settings
        self.consumer = consumer
        self.trust = trust
        self.directory = directory
        self.store_factory = store_factory
        self.ipfs = ipfs
        self.ledger = ledger
        self.alert_hooks = list(alert_hooks)
        self.block_lookup = block_lookup
        self.channel = channel
        self.registry = registry
        self.stats = GatewayStats()
        self.acks = AckPublisher(
            consumer.publish, store_factory, interval_s=settings.ack_interval_s
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_seal = 0.0  # monotonic time of this gateway's last seal
        # The open batch this gateway's ingest appends to (ReadingStore.store_verified
        # batch_into), and those it has closed, for the batch loop to seal.
        self._open_batch = new_batch_id()
        self._opened = time.monotonic()
        self._closed: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._sealed = threading.Event()  # the batch loop sealed something: wakes the anchor loop
        # Checked groups on their way to the store thread: one is verified while the previous
        # one is written (bounded, so verification cannot run far ahead of the database).
        self._checked: queue.Queue[_Checked] = queue.Queue(maxsize=2)

    def start(self) -> None:
        self.consumer.start()
        for name, loop in (
            ("ingest", self._ingest_loop),
            ("store", self._store_loop),
            ("batch", self._batch_loop),
            ("anchor", self._anchor_loop),
            ("acks", lambda: self.acks.run(self._stop)),
            ("metrics", self._metrics_loop),
        ):
            thread = threading.Thread(target=_titled(name, loop), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.registry is not None:
            registry = self.registry
            thread = threading.Thread(
                target=_titled(
                    "registry", lambda: registry.run(self._stop, warm=self._recent_certificates)
                ),
                name="registry",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _recent_certificates(self) -> list[str]:
        since = datetime.now(UTC) - timedelta(seconds=self.registry_warm_s)
        with self.store_factory() as store:
            return store.recent_certificates(since)

    def stop(self) -> None:
        self._stop.set()
        self._sealed.set()
        for thread in self._threads:
            thread.join(30)
        self._seal_on_stop()
        self.consumer.stop()
        self.stats.acks_published = self.acks.published

    def _seal_on_stop(self) -> None:
        """Seal what this gateway appended to, so it is not left for another gateway's sweep;
        any gateway's anchoring loop takes the sealed batches to IPFS and the ledger."""
        self._close_open_batch()
        try:
            store = self.store_factory()
            try:
                while True:
                    store.seal_open_batch(self._closed.get_nowait())
            except queue.Empty:
                pass
            finally:
                store.close()
        except Exception:
            log.exception("sealing the open batches at stop failed; another gateway will")

    # -- ingest ------------------------------------------------------------------------

    def _ingest_loop(self) -> None:
        """Drain and check deliveries; the store thread writes and acknowledges them."""
        crl_mtime = 0.0
        last_crl_check = 0.0
        while not self._stop.is_set():
            if (
                self.settings.crl_path
                and time.monotonic() - last_crl_check > self.settings.crl_check_s
            ):
                last_crl_check = time.monotonic()
                crl_mtime = self._refresh_crls(crl_mtime)
            deliveries = drain(
                self.consumer.deliveries,
                self.settings.ingest_max_messages,
                self.settings.ingest_wait_s,
                self.settings.ingest_linger_s,
            )
            if not deliveries:
                continue
            checked = self.check(deliveries)
            if checked is None:
                return  # stopped while waiting: not acknowledged, the broker redelivers
            while not self._stop.is_set():
                try:
                    self._checked.put(checked, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def _store_loop(self) -> None:
        """Store, quarantine and acknowledge checked groups in order; runs until stopped and
        the queue is empty (a group left behind is not acknowledged: the broker redelivers)."""
        store = self.store_factory()
        while not (self._stop.is_set() and self._checked.empty()):
            if time.monotonic() - self._opened >= self.settings.batch_max_age_s:
                self._close_open_batch()
            try:
                checked = self._checked.get(timeout=self.settings.ingest_wait_s)
            except queue.Empty:
                continue
            try:
                # A lost database (a failover) is waited out and the same group written again;
                # stopped meanwhile, it stays unacknowledged (gateway.reconnect).
                until_committed(partial(self.commit, store, checked), self._stop)
            except Exception:
                # Nothing was acknowledged: the broker redelivers after our reconnect.
                log.exception(
                    "ingest of %d messages failed; not acknowledged", len(checked.deliveries)
                )
                time.sleep(1)

    def _refresh_crls(self, seen_mtime: float) -> float:
        assert self.settings.crl_path is not None
        try:
            mtime = self.settings.crl_path.stat().st_mtime
            if mtime != seen_mtime:
                self.trust.replace_crls(load_pem_crls(self.settings.crl_path.read_bytes()))
                log.info("gateway: CRLs reloaded from %s", self.settings.crl_path)
            return mtime
        except OSError as exc:
            log.error("gateway: cannot read CRLs: %s", exc)
            return seen_mtime

    def ingest(self, store: ReadingStore, deliveries: Sequence[Delivery]) -> None:
        """Check, store and quarantine one group of deliveries, then acknowledge them all."""
        checked = self.check(deliveries)
        if checked is not None:
            self.commit(store, checked)

    def _until_registry_answers(self, check: Callable[[], _Outcome]) -> _Outcome | None:
        """``check()``, again and again while the ledger's registry cannot be asked.

        A ledger outage is not the message's fault: rather than quarantine what it cannot vouch
        for yet, the gateway waits (the broker queues meanwhile) and checks again. None when the
        gateway stops while it waits: the group is then left unacknowledged, for the broker to
        redeliver.
        """
        outcome = check()
        delay = 0.2
        while isinstance(outcome, Rejected) and outcome.reason == REGISTRY_UNAVAILABLE:
            log.warning("%s; checking again in %.1f s", outcome.detail, delay)
            if self._stop.wait(delay):
                return None
            delay = min(delay * 2, 5.0)
            outcome = check()
        return outcome

    def check(self, deliveries: Sequence[Delivery]) -> _Checked | None:
        """Verify one group of deliveries: rows to store, drop reports, and rejects (None if
        the gateway stopped while waiting for the ledger's registry)."""
        now = datetime.now(UTC)
        skew = timedelta(seconds=self.settings.max_future_skew_s)
        rows: list[VerifiedRow] = []
        drops: list[DroppedRow] = []
        rejected: list[QuarantineRow] = []
        for delivery in deliveries:
            checker = check_dropped if is_dropped_report(delivery.topic) else check_message
            outcome = self._until_registry_answers(
                partial(
                    checker,
                    delivery.topic,
                    delivery.payload,
                    trust=self.trust,
                    directory=self.directory,
                    received_at=now,
                    max_future_skew=skew,
                )
            )
            if outcome is None:
                return None
            if isinstance(outcome, Accepted):
                rows.append(VerifiedRow.from_verified(outcome.verified, outcome.envelope, now))
            elif isinstance(outcome, AcceptedDrop):
                drops.append(DroppedRow.from_verified(outcome.verified, outcome.envelope, now))
            else:
                rejected.append(_quarantine_row(outcome))
        return _Checked(deliveries, now, rows, drops, rejected)

    def commit(self, store: ReadingStore, checked: _Checked) -> None:
        """Store and quarantine a checked group, then acknowledge it (only after the commit)."""
        deliveries, now, rows, drops = (
            checked.deliveries,
            checked.now,
            checked.rows,
            checked.drops,
        )
        rejected = list(checked.rejected)
        result = store.store_verified(rows, batch_into=self._open_batch) if rows else None
        if result is not None:
            if result.batch_id is None or result.batch_size >= self.settings.batch_max_readings:
                self._close_open_batch()
            rejected.extend(
                QuarantineRow(
                    topic=f"tracehub/v1/devices/{c.row.device_id}/readings",
                    reason="replay",
                    raw=c.row.envelope,
                    detail=f"seq {c.row.seq} is already stored with hash {c.stored_hash}",
                    device_id=c.row.device_id,
                    received_at=now,
                )
                for c in result.conflicts
            )
        if drops:
            self.stats.dropped_reports += store.record_dropped(drops)
        if rejected:
            store.quarantine(rejected)
        self.consumer.ack(deliveries)
        metrics.READINGS_RECEIVED.inc(len(deliveries))
        _observe(rejected, result)
        # Only now, with everything durable: tell the devices (duplicates included, since a
        # resend means the device is still waiting for its acknowledgement).
        self.acks.note({r.device_id for r in rows} | {d.device_id for d in drops})
        self.stats.received += len(deliveries)
        self.stats.quarantined += len(rejected)
        if result is not None:
            self.stats.stored += len(result.stored)
            self.stats.duplicates += result.duplicates
            self.stats.gaps += len(result.gaps)
            self.stats.chain_breaks += len(result.chain_breaks)
            if self.alert_hooks and result.stored:
                fresh = {(k.device_id, k.seq) for k in result.stored}
                stored_rows: list[dict[str, object]] = [
                    {
                        "device_id": r.device_id,
                        "seq": r.seq,
                        "ts": r.ts,
                        "kind": r.kind,
                        "data": r.data,
                        "loc": r.loc,
                    }
                    for r in rows
                    if (r.device_id, r.seq) in fresh
                ]
                for hook in self.alert_hooks:
                    try:
                        hook(stored_rows)
                    except Exception:
                        log.exception("alert hook failed")

    # -- batch -------------------------------------------------------------------------

    def _batch_loop(self) -> None:
        store = self.store_factory()
        while not self._stop.wait(self.settings.batch_max_age_s / 4):
            try:
                if self.seal_due(store):
                    self._sealed.set()
            except Exception:
                log.exception("sealing failed; retried")

    def _close_open_batch(self) -> None:
        """Append to a new batch from now on; the batch loop seals the old one."""
        self._closed.put(self._open_batch)
        self._open_batch = new_batch_id()
        self._opened = time.monotonic()

    def seal_due(self, store: ReadingStore, *, force: bool = False) -> list[BatchRecord]:
        """Seal the open batches this gateway closed, those left open too long by any gateway
        (one that died, or went quiet), and readings stored outside any batch: full batches at
        once, the remainder when it is old enough."""
        sealed = []
        while True:
            try:
                closed = self._closed.get_nowait()
            except queue.Empty:
                break
            sealed.extend(self._seal_open(store, closed))
        stale = timedelta(seconds=3 * self.settings.batch_max_age_s + 2)
        for batch_id in store.open_batches_due(stale):
            if batch_id != self._open_batch:
                sealed.extend(self._seal_open(store, batch_id))
        while not self._stop.is_set() or force:
            keys = store.unbatched(limit=self.settings.batch_max_readings)
            if not keys:
                break
            full = len(keys) >= self.settings.batch_max_readings
            if not full and not force and not self._remainder_due():
                break
            tree = MerkleTree([bytes.fromhex(k.reading_hash) for k in keys])
            batch_id = new_batch_id()
            try:
                record = store.seal_batch(batch_id, keys, tree.root.hex())
            except BatchConflictError as exc:
                log.info("another gateway sealed some of these readings first: %s", exc)
                continue
            self._last_seal = time.monotonic()
            self.stats.batches_sealed += 1
            _log_sealed(record)
            sealed.append(self._put_on_ipfs(store, record))
            if not full:
                break
        return sealed

    def _seal_open(self, store: ReadingStore, batch_id: str) -> list[BatchRecord]:
        record = store.seal_open_batch(batch_id)
        if record is None or record.state != "sealed":
            return []  # empty, or sealed and taken further by another gateway
        self._last_seal = time.monotonic()
        self.stats.batches_sealed += 1
        _log_sealed(record)
        return [self._put_on_ipfs(store, record)]

    def _remainder_due(self) -> bool:
        return time.monotonic() - self._last_seal >= self.settings.batch_max_age_s

    def _put_on_ipfs(self, store: ReadingStore, record: BatchRecord) -> BatchRecord:
        data = encode_batch(record.batch_id, store.batch_envelopes(record.batch_id))
        # The object's root comes from the envelopes as stored now; the ledger gets the root the
        # seal recorded. Two different roots would anchor a batch no verifier can match.
        root = read_header(data).root.hex()
        if root != record.root:
            raise BatchRootMismatchError(
                f"batch {record.batch_id}: its envelopes give root {root}, "
                f"the seal recorded {record.root}; not put on IPFS"
            )
        cid = self.ipfs.add(data)
        return store.mark_stored(record.batch_id, cid)

    # -- anchor ------------------------------------------------------------------------

    def _anchor_loop(self) -> None:
        store = self.store_factory()
        while not self._stop.is_set():
            # Cleared before the pass: a seal during it wakes the next wait at once.
            self._sealed.wait(self.settings.anchor_poll_s)
            self._sealed.clear()
            if self._stop.is_set():
                break
            try:
                self.anchor_due(store)
            except Exception:
                log.exception("anchoring failed; retried")

    def anchor_due(self, store: ReadingStore) -> int:
        anchored = 0
        # A claim is a lease: if this gateway dies mid-anchor, another (or its restart) takes the
        # batch over once the lease runs out. Anchoring takes about a second, so 30 s is ample.
        for item in store.outbox_due(limit=20, lease=self.settings.anchor_lease):
            batch = item.batch
            try:
                if batch.ipfs_cid is None:
                    batch = self._put_on_ipfs(store, batch)
                assert batch.ipfs_cid is not None
                tx_id, block = self._anchor(batch)
                store.mark_anchored(batch.batch_id, tx_id, block)
                self.stats.batches_anchored += 1
                metrics.BATCHES_ANCHORED.inc()
                log.info(
                    "batch %s anchored in tx %s, block %d",
                    batch.batch_id,
                    tx_id,
                    block,
                    extra={"batch_id": batch.batch_id, "tx_id": tx_id, "block": block},
                )
                anchored += 1
            except (LedgerError, IPFSError) as exc:
                self.stats.anchor_failures += 1
                metrics.ANCHOR_FAILURES.inc()
                low, high = self.settings.anchor_retry_s
                delay = min(high, low * 2 ** max(item.attempts - 1, 0))
                store.outbox_failed(
                    batch.batch_id, str(exc), datetime.now(UTC) + timedelta(seconds=delay)
                )
                log.warning(
                    "anchoring batch %s failed (attempt %d, retry in %.0f s): %s",
                    batch.batch_id,
                    item.attempts,
                    delay,
                    exc,
                )
        return anchored

    # -- metrics -----------------------------------------------------------------------

    def _metrics_loop(self) -> None:
        """Refresh the gauges read from the shared store (outbox, anchor lag, silent devices)."""
        store = self.store_factory()
        while True:
            try:
                backlog = store.backlog(self.settings.silent_after)
                metrics.OUTBOX_DEPTH.set(backlog.outbox_depth)
                metrics.ANCHOR_LAG.set(backlog.oldest_unanchored_s)
                metrics.SILENT_DEVICES.set(backlog.silent_devices)
            except Exception:
                log.exception("reading the store's backlog for the metrics failed; retried")
            if self._stop.wait(self.settings.metrics_refresh_s):
                return

    def _anchor(self, batch: BatchRecord) -> tuple[str, int]:
        anchor = {
            "batch_id": batch.batch_id,
            "root": batch.root,
            "ipfs_cid": batch.ipfs_cid,
            "count": batch.count,
            "first_ts": batch.first_ts.isoformat(),
            "last_ts": batch.last_ts.isoformat(),
            "devices": batch.devices,
        }
        return submit_anchor(
            self.ledger, anchor, block_lookup=self.block_lookup, channel=self.channel
        )


def _titled(name: str, loop: Callable[[], None]) -> Callable[[], None]:
    """``loop``, in a thread the OS knows by ``name`` too (top -H, /proc/<pid>/task/*/comm:
    bench.ingest_bench charges each thread's CPU to it)."""

    def run() -> None:
        setproctitle.setthreadtitle(name)
        loop()

    return run


@dataclass(frozen=True)
class _Checked:
    """A group of deliveries after the checks, before the store."""

    deliveries: Sequence[Delivery]
    now: datetime
    rows: list[VerifiedRow]
    drops: list[DroppedRow]
    rejected: list[QuarantineRow]


_Outcome = TypeVar("_Outcome")


def _quarantine_row(rejected: Rejected) -> QuarantineRow:
    return QuarantineRow(
        topic=rejected.topic,
        reason=rejected.reason,
        raw=rejected.raw,
        detail=rejected.detail,
        device_id=rejected.device_id,
        received_at=rejected.received_at,
    )


def _observe(rejected: Sequence[QuarantineRow], result: StoreResult | None) -> None:
    """Count a committed group and log each reading's way into its open batch: the first link
    of the correlation from MQTT message to ledger transaction (tracehub.logjson)."""
    for row in rejected:
        metrics.READINGS_QUARANTINED.labels(row.reason).inc()
        log.info(
            "quarantined a message of %s: %s",
            row.device_id,
            row.reason,
            extra={"device_id": row.device_id, "reason": row.reason, "topic": row.topic},
        )
    if result is None:
        return
    metrics.READINGS_STORED.inc(len(result.stored))
    metrics.READINGS_DUPLICATE.inc(result.duplicates)
    if result.stored:
        metrics.LAST_READING.set_to_current_time()
    if log.isEnabledFor(logging.DEBUG):
        into = result.batch_id  # None: unbatched, sealed later by seal_due (logged there)
        for key in result.stored:
            log.debug(
                "reading %s/%d stored into batch %s",
                key.device_id,
                key.seq,
                into,
                extra={"device_id": key.device_id, "seq": key.seq, "batch_id": into},
            )


def _log_sealed(record: BatchRecord) -> None:
    log.info(
        "batch %s sealed: %d readings of %d devices",
        record.batch_id,
        record.count,
        record.devices,
        extra={"batch_id": record.batch_id, "count": record.count, "root": record.root},
    )
    metrics.BATCHES_SEALED.inc()
