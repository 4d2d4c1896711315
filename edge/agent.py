"""The edge agent: reader and sensor ports in, signed readings out, nothing lost in between.

Each reader port runs its protocol's decoder in a thread (edge.rfid_reader.transport); repeated
sightings are smoothed into read events; each sensor is polled in a thread. Every read event and
sensor sample becomes a Reading signed with the device key and goes into the durable spool, which
assigns its sequence number and hash-chain link; the publisher drains the spool to the broker.
A status file is rewritten every second for `tracehub-edge status`.
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
from edge.publisher import BrokerSettings, Publisher
from edge.rfid_reader import decoder_for
from edge.rfid_reader.base import TagRead
from edge.rfid_reader.transport import profile_for
from edge.rfid_reader.transport import run as run_reader
from edge.sensors import ModbusSensor, SensorSample, SensorSpec, poll_forever
from edge.smoothing import ReadEvent, ReadSmoother
from edge.spool import Spool, SpoolFullError
from tracehub.dropped import DroppedRange, sign_dropped
from tracehub.envelope import sign_reading
from tracehub.reading import Reading, format_ts

log = logging.getLogger(__name__)


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
        with self.lock:
            self.tag_reads += 1
            self.last_read_at = now
            self.last_epc = message.epc.hex().upper()
            events = self.smoother.add(message, now)
        self.agent.spool_events(self, events)

    def flush(self, now: float) -> None:
        with self.lock:
            events = self.smoother.flush(now)
        self.agent.spool_events(self, events)

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

    def run(self, stop: threading.Event) -> None:
        poll_forever(self.sensor, self.on_sample, stop)

    def on_sample(self, sample: SensorSample) -> None:
        self.last_sample = sample
        self.agent.spool_sample(
            self.name, sample.temperature_c, sample.humidity_pct, sample.at.timestamp()
        )

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
        }


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat()


class Agent:
    """Runs every configured port plus the publisher until `stop()`."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.signer = Signer(config.device_id, config.certificate, config.key)
        self.spool = Spool(
            config.spool_path,
            max_readings=config.spool_max_readings,
            max_age_s=config.spool_max_age_s,
            when_full=config.spool_when_full,
        )
        self.acks = HubAcks(self.spool, config.device_id, self.signer.sign_dropped, config.acks)
        self.publisher = Publisher(
            self.spool,
            BrokerSettings(
                host=config.broker_host,
                port=config.broker_port,
                ca_file=config.broker_ca,
                cert_file=config.certificate,
                key_file=config.key,
                client_id=f"edge-{config.device_id}",
            ),
            self.acks,
        )
        self.readers = [_ReaderWorker(r, self) for r in config.readers]
        self.sensors = [_SensorWorker(s, self) for s in config.sensors]
        self.refused = 0
        self.started_at = time.time()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- producing readings ------------------------------------------------------------

    def spool_events(self, worker: _ReaderWorker, events: list[ReadEvent]) -> None:
        if not events:
            return
        items = []
        for event in events:
            data: dict[str, Any] = {
                "epc": event.epc.hex().upper(),
                "antenna": event.antenna if event.antenna is not None else 0,
                "read_count": event.count,
                "rssi_dbm": event.peak_rssi_dbm if event.peak_rssi_dbm is not None else 0,
                "first_seen": format_ts(_ms(event.first_seen)),
                "last_seen": format_ts(_ms(event.last_seen)),
                "reader": worker.config.name,
            }
            ts = _ms(event.last_seen)
            items.append(
                (self.config.device_id, self.signer.builder("rfid", data, ts, self.config.location))
            )
        self._append(items)
        worker.events += len(events)

    def spool_sample(
        self, sensor_name: str, temperature_c: float, humidity_pct: float, at: float
    ) -> None:
        data = {"temperature_c": temperature_c, "humidity_pct": humidity_pct, "sensor": sensor_name}
        build = self.signer.builder("environment", data, _ms(at), self.config.location)
        self._append([(self.config.device_id, build)])

    def _append(self, items: list[tuple[str, Callable[[int, str], bytes]]]) -> None:
        try:
            self.spool.append_many(items)
        except SpoolFullError as exc:
            self.refused += len(items)
            log.error("%s", exc)

    # -- running -----------------------------------------------------------------------

    def start(self) -> None:
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
        last_expiry = 0.0
        while not self._stop.wait(0.2):
            now = time.time()
            for worker in self.readers:
                worker.flush(now)
            if now - last_expiry > 60:
                self.spool.expire()
                last_expiry = now
            self.write_status()

    def stop(self, timeout: float = 10.0) -> None:
        """Close open read events into the spool, then stop every thread."""
        for worker in self.readers:
            worker.flush(float("inf"))
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self.write_status()
        self.spool.close()

    def request_stop(self) -> None:
        """Ask `wait()` to return (safe from a signal handler)."""
        self._stop.set()

    def wait(self) -> None:
        self._stop.wait()

    def status(self) -> dict[str, Any]:
        return {
            "device": self.config.device_id,
            "pid": os.getpid(),
            "updated_at": datetime.now(UTC).isoformat(),
            "started_at": _iso(self.started_at),
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

    def write_status(self) -> None:
        path = self.config.status_path
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.status(), indent=2, default=str))
        os.replace(temporary, path)
