"""The gateway's copy of the device registry on the ledger, by certificate fingerprint.

The gateway accepts a reading only from a certificate enrolled on the ledger and not revoked at
the reading's time (decision 0024). Asking the ledger per reading would cost a round trip per
message, so enrolments are cached; the chaincode emits no events, so the cache is kept fresh by
polling:

- every ``refresh_s`` a background thread asks the ledger's revocation log for what was revoked
  since it last asked (``run``): one small query, however many devices the cache holds, and a
  re-read of each cached certificate the log names, so a revocation on the ledger reaches the
  gateway within that bound. Every ``full_refresh_every``-th refresh re-reads every cached
  certificate instead (one query per 500), the backstop should the log and a record ever come
  from peers at different heights; a chaincode without the log gets that full pass every time;
- a fingerprint the cache does not know is asked of the ledger at once, and the answer "not
  enrolled" is kept for ``miss_recheck_s``, so a device enrolled a moment ago is accepted on its
  next resend while a flood from an unknown device costs one query per fingerprint per interval;
- entries unused for ``forget_after_s`` are dropped, so the refresh only covers active devices.

``warm`` loads the certificates of recently seen devices at start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from certs.registry import CERTIFICATES_PER_QUERY, LedgerRegistry
from tracehub.ledger import EvaluateError, LedgerError

log = logging.getLogger(__name__)

REFRESH_WORKERS = 8  # look-ups at once, with a chaincode that answers one at a time


@dataclass(frozen=True)
class Enrolment:
    """One certificate as the ledger records it."""

    device_id: str
    certificate: x509.Certificate
    revoked_at: datetime | None
    revocation_reason: str | None


@dataclass
class _Entry:
    enrolment: Enrolment | None  # None: not enrolled when last asked
    checked: float  # monotonic time of the last answer from the ledger
    used: float  # monotonic time of the last look-up


def _enrolment(record: dict[str, object]) -> Enrolment:
    revoked = record.get("revoked_at")
    reason = record.get("revocation_reason")
    return Enrolment(
        device_id=str(record["device_id"]),
        certificate=x509.load_pem_x509_certificate(str(record["certificate_pem"]).encode()),
        revoked_at=datetime.fromisoformat(str(revoked)) if revoked else None,
        revocation_reason=str(reason) if reason else None,
    )


class RegistryCache:
    """Enrolled device certificates by SHA-256 fingerprint, from the ledger, kept fresh by
    polling. A :class:`tracehub.verify.CertificateDirectory`; thread-safe."""

    def __init__(
        self,
        registry: LedgerRegistry,
        *,
        refresh_s: float = 5.0,
        miss_recheck_s: float = 1.0,
        forget_after_s: float = 3600.0,
        full_refresh_every: int = 12,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self.refresh_s = refresh_s
        self.full_refresh_every = full_refresh_every
        self.miss_recheck_s = miss_recheck_s
        self.forget_after_s = forget_after_s
        self._clock = clock
        self._entries: dict[bytes, _Entry] = {}
        self._lock = threading.Lock()
        self.ledger_queries = 0
        self._batched = True  # until the chaincode says it has no GetDeviceCertificates
        # How many revocation log entries the cache has taken in; None until the first ledger
        # read, and for good once the chaincode says it has no log (GetRevocationsAfter).
        self._log_seen: int | None = None
        self._has_log = True
        self._log_lock = threading.Lock()
        self._refreshes = 0

    def enrolment(self, sha256: bytes) -> Enrolment | None:
        """The ledger's record of this certificate, or None if it is not enrolled. Raises
        :class:`LedgerError` when the ledger must be asked and cannot answer."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(sha256)
            if entry is not None:
                entry.used = now
                if entry.enrolment is not None or now - entry.checked < self.miss_recheck_s:
                    return entry.enrolment
        return self._fetch(sha256, now)

    def by_fingerprint(self, sha256: bytes) -> x509.Certificate | None:
        found = self.enrolment(sha256)
        return None if found is None else found.certificate

    def warm(self, fingerprints: Iterable[str]) -> int:
        """Load these certificates (hex fingerprints) now; returns how many are enrolled."""
        try:
            found = self._fetch_many([bytes.fromhex(f) for f in dict.fromkeys(fingerprints)])
        except LedgerError as exc:
            log.warning("registry cache: warming stopped, the ledger is unavailable: %s", exc)
            return 0
        return sum(enrolment is not None for enrolment in found)

    def refresh(self, *, full: bool = False) -> int:
        """Forget certificates unused for ``forget_after_s``; re-read those of the others the
        revocation log names since the last refresh, or all of them on a full pass (``full``,
        every ``full_refresh_every``-th call, or a chaincode without the log). Returns how many
        were re-read."""
        now = self._clock()
        with self._lock:
            stale = [k for k, e in self._entries.items() if now - e.used > self.forget_after_s]
            for key in stale:
                del self._entries[key]
        self._refreshes += 1
        seen = self._start_log()
        full = full or self._refreshes % self.full_refresh_every == 0
        revoked = None if full or seen is None else self._revoked_after(seen)
        # On a full pass, the log's count before the records: what is revoked after it is a
        # later entry, for the next refresh.
        count = self._log_count() if revoked is None else None
        # What the cache holds is read after the log: a certificate fetched before this is
        # re-read if the log names it, one fetched after it has every revocation the log had.
        with self._lock:
            held = [k for k, e in self._entries.items() if e.enrolment is not None]
        due = held if revoked is None else [k for k in held if k in revoked]
        self._fetch_many(due)
        if count is not None:
            self._log_seen = count
        return len(due)

    def _start_log(self) -> int | None:
        """The log entries taken in so far, read as the count the first time: before any
        record is fetched, so every revocation after a fetched record is an entry after it.
        None for a chaincode without the log."""
        with self._log_lock:
            if self._log_seen is None and self._has_log:
                self._log_seen = self._log_count()
            return self._log_seen

    def _log_count(self) -> int | None:
        if not self._has_log:
            return None
        try:
            count, _ = self._registry.revocations_after(-1)
        except EvaluateError as exc:
            if "unknown function" not in str(exc):
                raise
            log.warning("registry cache: the chaincode has no revocation log: %s", exc)
            self._has_log = False
            return None
        self.ledger_queries += 1
        return count

    def _revoked_after(self, seen: int) -> set[bytes] | None:
        """Fingerprints the log names after its ``seen``-th entry, taken in; None if the log
        is shorter than what was seen (another ledger's): a full pass is due."""
        revoked: set[bytes] = set()
        while True:
            count, entries = self._registry.revocations_after(seen)
            self.ledger_queries += 1
            if count < seen:
                return None
            for entry in entries:
                revoked.add(bytes.fromhex(entry["fingerprint_sha256"]))
                seen = int(entry["n"])
            self._log_seen = seen
            if seen >= count or not entries:
                return revoked

    def _fetch_many(self, keys: list[bytes]) -> list[Enrolment | None]:
        """Ask the ledger for many certificates in as few queries as it takes (one per 500);
        a chaincode from before ``GetDeviceCertificates`` is asked one certificate at a time,
        several queries at once (the gRPC channel is shared). Either way a pass over many
        devices stays short next to refresh_s, which bounds how late a revocation takes effect.
        """
        if not keys:
            return []
        self._start_log()
        if self._batched:
            try:
                records = self._registry.certificates([key.hex() for key in keys])
            except EvaluateError as exc:
                if "unknown function" not in str(exc):
                    raise
                log.warning("registry cache: the chaincode cannot look up many at once: %s", exc)
                self._batched = False
            else:
                self.ledger_queries += -(-len(keys) // CERTIFICATES_PER_QUERY)
                now = self._clock()
                return [self._store(key, records.get(key.hex()), now) for key in keys]
        with ThreadPoolExecutor(REFRESH_WORKERS, thread_name_prefix="registry") as pool:
            return list(pool.map(lambda key: self._fetch(key, self._clock()), keys))

    def run(self, stop: threading.Event, warm: Callable[[], Iterable[str]] = tuple) -> None:
        """Warm the cache, then refresh it every ``refresh_s`` until ``stop``."""
        try:
            self.warm(warm())
        except Exception:
            log.exception("registry cache: warming failed; devices are looked up as they come")
        while not stop.wait(self.refresh_s):
            try:
                self.refresh()
            except LedgerError as exc:
                log.warning("registry cache: refresh failed, retried: %s", exc)

    def _fetch(self, sha256: bytes, now: float) -> Enrolment | None:
        self._start_log()
        record = self._registry.certificate(sha256.hex())
        self.ledger_queries += 1
        return self._store(sha256, record, now)

    def _store(self, sha256: bytes, record: dict[str, Any] | None, now: float) -> Enrolment | None:
        found = None if record is None else _enrolment(record)
        with self._lock:
            previous = self._entries.get(sha256)
            self._entries[sha256] = _Entry(found, now, previous.used if previous else now)
        return found
