"""The edge agent: reader and sensor ports in, signed readings out, nothing lost in between.

Each reader port runs its protocol's decoder in a thread (edge.rfid_reader.transport); every
sighting is journaled (edge.journal) and repeated sightings are smoothed into read events; each
sensor is polled in a thread. Every read event, sensor sample and sensor fault (a `health`
reading) becomes a Reading signed with the device key and goes into the durable spool, which
assigns its sequence number and hash-chain link; the publisher drains the spool to the broker.
The agent holds a lock in its data directory while it runs (edge.liveness) and rewrites a status
file for `tracehub-edge status`; its counters are saved in the spool and carried across restarts.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge.acks import HubAcks
from edge.config import AgentConfig, ReaderConfig, SensorConfig
from edge.journal import Journal, Sighting
from edge.liveness import AgentLock
from edge.publisher import BrokerSettings, Publisher
from edge.rfid_reader import decoder_for
from edge.rfid_reader.base import TagRead
from edge.rfid_reader.transport import profile_for
from edge.rfid_reader.transport import run as run_reader
from edge.sensors import ModbusSensor, SensorFailure, SensorSample, SensorSpec, poll_forever
from edge.smoothing import ReadEvent, ReadSmoother
from edge.spool import Consumed, Spool, SpoolFullError
from tracehub.dropped import DroppedRange, sign_dropped
from tracehub.envelope import sign_reading
from tracehub.reading import Reading, format_ts

log = logging.getLogger(__name__)

#: A fault that lasts is reported again this often (a record that the sensor is still down).
HEALTH_REPEAT_S = 300.0
#: How often everything committed without an fsync (journal, counters) is synced to disk.
SYNC_EVERY_S = 1.0
#: SensorStats counters by the `fault` a health reading names.
FAULTS = {
    "timeouts": "timeout",
    "crc_errors": "crc_error",
    "modbus_exceptions": "exception_response",
    "implausible": "out_of_range",
    "connection_errors": "connection_error",
    "other_errors": "other",
}
_PUBLISHER_COUNTERS = (
    "published",
    "resent",
    "acknowledged",
    "reports_published",
    "refused",
    "connects",
    "connection_failures",
)
_ACK_COUNTERS = ("hub_acks", "bad_acks", "settled", "resent_missing", "reports_signed")


def _ms(moment: float) -> datetime:
    """A UTC datetime with the millisecond precision readings carry."""
    return datetime.fromtimestamp(round(moment * 1000) / 1000, UTC)


class Signer:
    """Signs readings as the configured device."""

    def __init__(self, device_id: str, certificate: Path, key: Path) -> None:
        self.device_id = device_id
        self.certificate = x509.load_pem_x509_certificate(certificate.read_bytes())
        private_key = serialization.load_pem_private_key(key.read_bytes(), password=None)
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key}: the device key must be an EC (P-256) key")
        self.key = private_key

    def builder(
        self, kind: str, data: dict[str, Any], ts: datetime, loc: str | None
    ) -> Callable[[int, str], bytes]:
        def build(seq: int, prev: str) -> bytes:
            reading = Reading(
                device=self.device_id,
                seq=seq,
                ts=ts,
                kind=kind,  # type: ignore[arg-type]
                data=data,
                prev=prev,
                loc=loc,
            )
            return sign_reading(reading, self.key, self.certificate)

        return build

    def sign_dropped(self, report: DroppedRange) -> bytes:
        """A dropped-range report, signed like readings."""
        return sign_dropped(report, self.key, self.certificate)


class _ReaderWorker:
    """One reader port: decode, smooth, spool."""

    def __init__(self, config: ReaderConfig, agent: Agent) -> None:
        self.config = config
        self.agent = agent
        self.decoder = decoder_for(config.protocol)
        self.smoother = ReadSmoother(config.smoothing_window_s)
        self.lock = threading.Lock()
        self.tag_reads = 0
        self.events = 0
        self.last_read_at: float | None = None
        self.last_epc: str | None = None

    def on_message(self, message: object) -> None:
        if not isinstance(message, TagRead):
            return
        now = time.time()
        tag = message.epc.hex().upper()
        with self.lock:
            # Durable before the smoother has it: a crash from here on loses nothing read.
            self.agent.journal.record(
                Sighting(
                    self.config.name, tag, message.antenna, message.rssi_dbm, now, message.id_kind
                )
            )
            self.tag_reads += 1
            self.last_read_at = now
            self.last_epc = tag
            events = self.smoother.add(message, now)
            self.agent.spool_events(self, events)

    def replay(self) -> int:
        """Feed the sightings a previous run journaled but did not spool into the smoother,
        at their own times; returns how many."""
        sightings = self.agent.journal.pending(self.config.name)
        with self.lock:
            for s in sightings:
                read = TagRead(
                    protocol=self.config.protocol,
                    epc=bytes.fromhex(s.epc),
                    antenna=s.antenna,
                    rssi_dbm=s.rssi_dbm,
                    pc=None,
                    raw=b"",
                    id_kind="card_id" if s.id_kind == "card_id" else "epc",
                )
                self.agent.spool_events(self, self.smoother.add(read, s.at))
        return len(sightings)

    def flush(self, now: float) -> None:
        # Under the lock, so events leave the smoother and enter the spool (taking their
        # sightings out of the journal) in the order they closed.
        with self.lock:
            self.agent.spool_events(self, self.smoother.flush(now))

    def status(self) -> dict[str, Any]:
        return {
            "protocol": self.config.protocol,
            "port": self.config.port,
            "tag_reads": self.tag_reads,
            "read_events": self.events,
            "last_read_at": _iso(self.last_read_at),
            "last_epc": self.last_epc,
            "decoder": asdict(self.decoder.stats),
        }


class _SensorWorker:
    """One Modbus sensor: poll, sign, spool."""

    def __init__(self, config: SensorConfig, agent: Agent) -> None:
        self.name = config.name
        self.agent = agent
        # Checked at start-up, so a bad register map fails the agent instead of a thread.
        self.sensor = ModbusSensor(SensorSpec.from_mapping(config.settings))
        self.last_sample: SensorSample | None = None
        self.fault: str | None = None  # the fault reported last, None while the sensor works
        self.fault_since: float | None = None
        self.failures = 0  # consecutive failed polls
        self.health_readings = 0
        self._reported_at = 0.0

    def run(self, stop: threading.Event) -> None:
        poll_forever(self.sensor, self.on_sample, stop, on_failure=self.on_failure)

    def on_sample(self, sample: SensorSample) -> None:
        at = sample.at.timestamp()
        if self.fault is not None:
            self._report("none", at, detail="reading again")
            self.fault, self.fault_since, self.failures = None, None, 0
        self.last_sample = sample
        self.agent.spool_sample(self.name, sample.temperature_c, sample.humidity_pct, at)

    def on_failure(self, failure: SensorFailure) -> None:
        """A failed poll: a signed health reading when the fault starts or changes, and again
        every HEALTH_REPEAT_S while it lasts, so the hub can alert on it."""
        now = time.time()
        fault = FAULTS.get(failure.kind, "other")
        self.failures += 1
        if self.fault_since is None:
            self.fault_since = now
        if fault != self.fault or now - self._reported_at >= HEALTH_REPEAT_S:
            self.fault = fault
            self._report(fault, now, detail=failure.message, value=failure.value)

    def _report(self, fault: str, at: float, *, detail: str, value: float | None = None) -> None:
        data: dict[str, Any] = {
            "component": self.name,
            "fault": fault,
            "detail": detail[:256] or fault,  # the format wants 1-256 characters
            "failures": self.failures,
        }
        if self.fault_since is not None:
            data["since"] = format_ts(_ms(self.fault_since))
        if value is not None:
            data["value"] = value
        self.agent.spool_health(data, at)
        self._reported_at = at
        self.health_readings += 1

    def status(self) -> dict[str, Any]:
        sample = self.last_sample
        return {
            "port": self.sensor.spec.port,
            "last_sample": None
            if sample is None
            else {
                "temperature_c": sample.temperature_c,
                "humidity_pct": sample.humidity_pct,
                "at": sample.at.isoformat(),
            },
            "stats": asdict(self.sensor.stats),
            "fault": self.fault,
            "fault_since": _iso(self.fault_since),
            "health_readings": self.health_readings,
        }


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat()


class Agent:
    """Runs every configured port plus the publisher until `stop()`."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.signer = Signer(config.device_id, config.certificate, config.key)
        # First: a second agent on the same spool must fail before it touches anything.
        self.lock = AgentLock(config.lock_path)
        self.spool = Spool(
            config.spool_path,
            max_readings=config.spool_max_readings,
            max_age_s=config.spool_max_age_s,
            when_full=config.spool_when_full,
        )
        self.journal = Journal(config.spool_path, synchronous=config.journal_sync)
        self.acks = HubAcks(self.spool, config.device_id, self.signer.sign_dropped, config.acks)
        self.publisher = Publisher(
            self.spool,
            BrokerSettings(
                host=config.broker_host,
                port=config.broker_port,
                ca_file=config.broker_ca,
                cert_file=config.certificate,
                key_file=config.key,
                # The broker's client id for this certificate: its CN, the device id.
                client_id=config.device_id,
            ),
            self.acks,
        )
        self.readers = [_ReaderWorker(r, self) for r in config.readers]
        self.sensors = [_SensorWorker(s, self) for s in config.sensors]
        self.refused = 0
        self.last_status: dict[str, Any] | None = None
        self.started_at = time.time()
        self.stopped_at: float | None = None
        # The counters as the previous runs left them; this run's are added on top.
        self._carried = self.spool.load_totals()
        self._carried.setdefault("agent.first_started_at", int(self.started_at))

        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- producing readings ------------------------------------------------------------

    def spool_events(self, worker: _ReaderWorker, events: list[ReadEvent]) -> None:
        if not events:
            return
        items = []
        consumed: list[Consumed] = []
        for event in events:
            tag = event.epc.hex().upper()
            data: dict[str, Any] = {
                "card_id" if event.id_kind == "card_id" else "epc": tag,
                "read_count": event.count,
                "first_seen": format_ts(_ms(event.first_seen)),
                "last_seen": format_ts(_ms(event.last_seen)),
                "reader": worker.config.name,
            }
            # Left out when the reader does not say (never a made-up 0: that reads as a port,
            # or as a very strong signal).
            if event.antenna is not None:
                data["antenna"] = event.antenna
            if event.peak_rssi_dbm is not None:
                data["rssi_dbm"] = event.peak_rssi_dbm
            ts = _ms(event.last_seen)
            items.append(
                (self.config.device_id, self.signer.builder("rfid", data, ts, self.config.location))
            )
            consumed.append((worker.config.name, tag, event.antenna, event.last_seen))
        self._append(items, consumed)
        worker.events += len(events)

    def spool_sample(
        self, sensor_name: str, temperature_c: float, humidity_pct: float, at: float
    ) -> None:
        data = {"temperature_c": temperature_c, "humidity_pct": humidity_pct, "sensor": sensor_name}
        build = self.signer.builder("environment", data, _ms(at), self.config.location)
        self._append([(self.config.device_id, build)])

    def spool_health(self, data: dict[str, Any], at: float) -> None:
        """A signed `health` reading: a sensor's fault, or its end (fault "none")."""
        build = self.signer.builder("health", data, _ms(at), self.config.location)
        self._append([(self.config.device_id, build)])
        log.warning("health: %s %s (%s)", data["component"], data["fault"], data.get("detail"))

    def _append(
        self,
        items: list[tuple[str, Callable[[int, str], bytes]]],
        consumed: list[Consumed] | None = None,
    ) -> None:
        try:
            self.spool.append_many(items, consumed=consumed or ())
        except SpoolFullError as exc:
            self.refused += len(items)
            log.error("%s", exc)
            if consumed:
                # Refused by the spool's stated policy: replaying them later would not undo that.
                self.journal.discard(consumed)

    # -- running -----------------------------------------------------------------------

    def start(self) -> None:
        for worker in self.readers:
            replayed = worker.replay()
            if replayed:
                log.info("reader %s: %d journaled sightings replayed", worker.config.name, replayed)
        for worker in self.readers:
            self._spawn(f"reader-{worker.config.name}", functools.partial(self._run_reader, worker))
        for sensor in self.sensors:
            self._spawn(f"sensor-{sensor.name}", functools.partial(sensor.run, self._stop))
        self._spawn("publisher", lambda: self.publisher.run(self._stop))
        self._spawn("housekeeping", self._housekeeping)

    def _run_reader(self, worker: _ReaderWorker) -> None:
        profile = profile_for(worker.config.protocol)
        run_reader(
            worker.config.port, worker.decoder, worker.on_message, self._stop, profile=profile
        )

    def _spawn(self, name: str, target: Callable[[], object]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _housekeeping(self) -> None:
        last_expiry = last_sync = 0.0
        while not self._stop.wait(0.2):
            now = time.time()
            try:
                for worker in self.readers:
                    worker.flush(now)
                if now - last_expiry > 60:
                    self.spool.expire()
                    last_expiry = now
                if now - last_sync >= SYNC_EVERY_S:
                    self.spool.sync()
                    last_sync = now
                self.write_status()
            except Exception:
                # A busy disk (sqlite "database is locked") must not end the flushing for good.
                log.exception("housekeeping failed; retried in 0.2 s")

    def stop(self, timeout: float = 10.0) -> None:
        """Close open read events into the spool, then stop every thread."""
        for worker in self.readers:
            worker.flush(float("inf"))
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self.stopped_at = time.time()
        self.write_status()
        self.journal.close()
        self.spool.close()
        self.lock.release()

    def request_stop(self) -> None:
        """Ask `wait()` to return (safe from a signal handler)."""
        self._stop.set()

    def wait(self) -> None:
        self._stop.wait()

    def status(self) -> dict[str, Any]:
        """The status, its counters totalled over every run (see `_carry`)."""
        status, _ = self._status_and_totals()
        return status

    def _status_and_totals(self) -> tuple[dict[str, Any], dict[str, int]]:
        status = self._status_this_run()
        return status, self._carry(status)

    def _status_this_run(self) -> dict[str, Any]:
        return {
            "device": self.config.device_id,
            "pid": os.getpid(),
            "running": self.stopped_at is None,
            "updated_at": datetime.now(UTC).isoformat(),
            "started_at": _iso(self.started_at),
            "stopped_at": _iso(self.stopped_at),
            "counters_since": _iso(self._carried["agent.first_started_at"]),
            "journal": {"sightings": self.journal.count()},
            "spool": {
                # Not yet acknowledged by the hub as stored; of which not yet taken by the broker.
                "depth": self.spool.depth(),
                "unsent": max(0, self.spool.unsent() - self.publisher.stats.unmarked),
                "dropped": self.spool.counters(),
                "refused_by_agent": self.refused,
                "last": self.spool.last(self.config.device_id),
            },
            "publisher": asdict(self.publisher.stats),
            "hub_acks": asdict(self.acks.stats),
            "readers": {w.config.name: w.status() for w in self.readers},
            "sensors": {s.name: s.status() for s in self.sensors},
        }

    def _carry(self, status: dict[str, Any]) -> dict[str, int]:
        """Add the counters carried from earlier runs into ``status`` (in place); returns the
        totals by flat name, as saved in the spool."""
        places: list[tuple[dict[str, Any], str, str]] = [
            (status["spool"], "refused_by_agent", "agent.refused"),
            *((status["publisher"], k, f"publisher.{k}") for k in _PUBLISHER_COUNTERS),
            *((status["hub_acks"], k, f"hub_acks.{k}") for k in _ACK_COUNTERS),
        ]
        for name, reader in status["readers"].items():
            places += [(reader, k, f"reader.{name}.{k}") for k in ("tag_reads", "read_events")]
            places += [
                (reader["decoder"], k, f"reader.{name}.decoder.{k}") for k in reader["decoder"]
            ]
        for name, sensor in status["sensors"].items():
            places.append((sensor, "health_readings", f"sensor.{name}.health_readings"))
            places += [
                (sensor["stats"], k, f"sensor.{name}.{k}")
                for k, v in sensor["stats"].items()
                if isinstance(v, int)
            ]
        totals = {"agent.first_started_at": self._carried["agent.first_started_at"]}
        for section, key, name in places:
            section[key] = totals[name] = self._carried.get(name, 0) + int(section[key])
        return totals

    def write_status(self) -> None:
        """Save the counters, then rewrite the status file atomically (so a status file never
        shows counts the next run would not continue from)."""
        status, totals = self._status_and_totals()
        self.spool.save_totals(totals)
        self.last_status = status  # what the metrics show (edge.metrics)
        path = self.config.status_path
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(status, indent=2, default=str))
        os.replace(temporary, path)
