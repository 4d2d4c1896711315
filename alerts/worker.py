"""The gateway's alert hook: enqueue on the hot path, evaluate on a worker thread.

The hook (gateway.consumer.AlertHook) only puts the stored rows on a bounded queue. When the
queue is full it never blocks ingest: it remembers the devices whose rows it dropped, and the
worker catches them up from the readings table (the engine's per-device cursor says where).
The worker also ticks the engine every `tick_s` and wakes the deliverer after each change.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from alerts.delivery import Deliverer
from alerts.engine import AlertEngine

log = logging.getLogger(__name__)


class AlertWorker:
    """Callable as an AlertHook; `start()` runs the evaluation thread (and the deliverer)."""

    def __init__(
        self,
        engine: AlertEngine,
        deliverer: Deliverer | None = None,
        *,
        queue_size: int = 1000,
        tick_s: float = 5.0,
    ) -> None:
        self.engine = engine
        self.deliverer = deliverer
        self.tick_s = tick_s
        self._queue: queue.Queue[Sequence[Mapping[str, Any]]] = queue.Queue(queue_size)
        self._dropped: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped_batches = 0
        self.evaluated = 0

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        try:
            self._queue.put_nowait(rows)
        except queue.Full:
            with self._lock:
                self._dropped.update(str(r["device_id"]) for r in rows)
                self.dropped_batches += 1

    def start(self) -> None:
        if self.deliverer is not None:
            self.deliverer.start()
        self._thread = threading.Thread(target=self._loop, name="alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
        if self.deliverer is not None:
            self.deliverer.stop()
        self.engine.close()

    def _changed(self, alerts: list[str]) -> None:
        if alerts and self.deliverer is not None:
            self.deliverer.wake()

    def _loop(self) -> None:
        # Readings stored while no engine ran (or before a crash) first.
        self._guard(self.engine.catch_up)
        next_tick = 0.0
        while not self._stop.is_set():
            try:
                rows = self._queue.get(timeout=0.2)
            except queue.Empty:
                rows = None
            if rows is not None and not self._guard(self._evaluate, rows):
                # Not lost: the readings are stored; catch up from there.
                with self._lock:
                    self._dropped.update(str(r["device_id"]) for r in rows)
            elif rows is not None:
                self.evaluated += len(rows)
            with self._lock:
                dropped, self._dropped = self._dropped, set()
            if dropped:
                self._guard(self.engine.catch_up, sorted(dropped))
                self._changed(["caught up"])
            now = datetime.now(UTC)
            if now.timestamp() >= next_tick:
                next_tick = now.timestamp() + self.tick_s
                self._guard(self._tick, now)

    def _evaluate(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self._changed(self.engine.evaluate(rows))

    def _tick(self, now: datetime) -> None:
        self._changed(self.engine.tick(now))

    def _guard(self, work: Callable[..., object], *args: Any) -> bool:
        try:
            work(*args)
        except Exception:
            log.exception("alert evaluation failed")
            self._stop.wait(0.5)  # e.g. the database is restarting: do not spin
            return False
        return True
