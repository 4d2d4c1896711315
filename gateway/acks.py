"""The gateway's side of the end-to-end acknowledgement (docs/acknowledgement.md).

After the ingest loop has committed a group of deliveries, it notes the devices they came from;
every ``interval_s`` this publisher sends each noted device one acknowledgement, read from the
store (so it is the hub's state, whichever gateway of the group stored what): stored through
``devices.last_seq``, minus the holes the device has not reported dropped. Every ``ask_every_s``
it also acknowledges the recently seen devices that still have missing readings, so a hole is
asked for again even when the device has nothing new to send. Acknowledgements are state, not
events: a lost or repeated one costs a resend at most, never a reading.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from ingest.store import ReadingStore
from tracehub.acks import HubAck, ack_topic

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], bool]


class AckPublisher:
    """Batches acknowledgements: at most one per device per ``interval_s``."""

    def __init__(
        self,
        publish: Publish,
        store_factory: Callable[[], ReadingStore],
        *,
        interval_s: float = 0.2,
        ask_every_s: float = 30.0,
        recently_seen: timedelta = timedelta(hours=1),
    ) -> None:
        self.publish = publish
        self.store_factory = store_factory
        self.interval_s = interval_s
        self.ask_every_s = ask_every_s
        self.recently_seen = recently_seen
        self.published = 0
        self._noted: set[str] = set()
        self._lock = threading.Lock()

    def note(self, devices: Iterable[str]) -> None:
        """These devices' deliveries are durably handled: acknowledge them soon."""
        with self._lock:
            self._noted.update(devices)

    def run(self, stop: threading.Event) -> None:
        store = self.store_factory()
        next_ask = time.monotonic() + self.ask_every_s
        try:
            while not stop.wait(self.interval_s):
                ask = time.monotonic() >= next_ask
                if ask:
                    next_ask = time.monotonic() + self.ask_every_s
                try:
                    self.flush(store, ask_again=ask)
                except Exception:
                    log.exception("acknowledging failed; the devices will resend")
        finally:
            store.close()

    def flush(self, store: ReadingStore, *, ask_again: bool = False) -> int:
        """Publish the acknowledgements due now; returns how many were published."""
        with self._lock:
            devices, self._noted = self._noted, set()
        asked: set[str] = set()
        if ask_again:
            since = datetime.now(UTC) - self.recently_seen
            asked = set(store.devices_with_holes(since)) - devices
        sent = 0
        for state in store.ack_states(devices | asked):
            if state.device_id in asked and not state.missing:
                continue  # only lost readings left: nothing to ask for
            ack = HubAck.bounded(state.device_id, state.through, state.missing)
            if self.publish(ack_topic(state.device_id), ack.to_json_bytes()):
                sent += 1
        self.published += sent
        return sent
