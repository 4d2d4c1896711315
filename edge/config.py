"""The edge agent's configuration file (TOML).

    [device]                       # the enrolled identity that signs every reading
    id = "dock-3-agent"
    certificate = ".run/pki/devices/dock-3-agent/cert.pem"
    key = ".run/pki/devices/dock-3-agent/key.pem"
    location = "4006381333931"     # GLN or read point URI, copied into every reading

    [broker]
    host = "127.0.0.1"
    port = 18883
    ca = ".run/pki/ca-bundle.pem"

    [spool]
    path = ".run/edge/dock-3-agent/spool.sqlite3"
    max_readings = 1000000
    max_age_days = 30
    when_full = "drop-oldest"      # or "refuse-new"
    journal_sync = "normal"        # tag sightings: "normal" survives a crash, "full" a power cut

    [acks]                         # the hub's end-to-end acknowledgement (optional section)
    resend_after_s = 30            # resend what the hub has not acknowledged after this long,
    max_resend_after_s = 600       # doubling per attempt up to this
    missing_grace_s = 5            # resend what the hub reports missing once sent this long ago

    [[readers]]
    name = "dock-door-1"
    protocol = "r2000"             # rdm6300 | r2000 | m100
    port = "/dev/ttyUSB0"          # or socket://host:port for readers on TCP
    smoothing_window_s = 2.0

    [[sensors]]
    name = "coldroom-1"
    port = "/dev/ttyUSB1"
    slave = 1
    interval_s = 5.0

Relative paths are relative to the configuration file's directory.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.acks import AckPolicy
from edge.errors import EdgeError
from edge.spool import WhenFull
from tracehub.errors import InvalidError


class EdgeConfigError(EdgeError, InvalidError):
    """The configuration file is missing something or holds a wrong value."""


@dataclass(frozen=True)
class ReaderConfig:
    name: str
    protocol: str
    port: str
    smoothing_window_s: float = 2.0


@dataclass(frozen=True)
class SensorConfig:
    """A sensor's name and its settings (edge.sensors.SensorSpec fields: port, slave, ...)."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentConfig:
    device_id: str
    certificate: Path
    key: Path
    location: str | None
    broker_host: str
    broker_port: int
    broker_ca: Path
    spool_path: Path
    spool_max_readings: int
    spool_max_age_s: float
    spool_when_full: WhenFull
    readers: list[ReaderConfig]
    sensors: list[SensorConfig]
    acks: AckPolicy = field(default_factory=AckPolicy)
    journal_sync: str = "normal"

    @property
    def lock_path(self) -> Path:
        """Held (flock) by the running agent: `tracehub-edge status` tells a dead one by it."""
        return self.spool_path.with_name("agent.lock")

    @property
    def status_path(self) -> Path:
        """Where the running agent publishes its status for `tracehub-edge status`."""
        return self.spool_path.with_name("status.json")


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise EdgeConfigError(f"[{name}] section missing")
    return value


def _require(section: dict[str, Any], where: str, key: str, kind: type) -> Any:
    if key not in section:
        raise EdgeConfigError(f"{where}: {key} missing")
    value = section[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise EdgeConfigError(f"{where}: {key} must be a {kind.__name__}, got {value!r}")
    return value


def load(path: Path) -> AgentConfig:
    """Read and check an agent configuration file."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EdgeConfigError(f"{path}: {exc}") from exc
    base = path.resolve().parent

    def resolve(value: str) -> Path:
        candidate = Path(value)
        return candidate if candidate.is_absolute() else base / candidate

    device = _section(data, "device")
    broker = _section(data, "broker")
    spool = _section(data, "spool")
    readers = [
        ReaderConfig(
            name=_require(r, "[[readers]]", "name", str),
            protocol=_require(r, "[[readers]]", "protocol", str),
            port=_require(r, "[[readers]]", "port", str),
            smoothing_window_s=float(r.get("smoothing_window_s", 2.0)),
        )
        for r in data.get("readers", [])
    ]
    sensors = [
        SensorConfig(
            name=_require(s, "[[sensors]]", "name", str),
            settings={k: v for k, v in s.items() if k != "name"},
        )
        for s in data.get("sensors", [])
    ]
    names = [r.name for r in readers] + [s.name for s in sensors]
    if len(set(names)) != len(names):
        raise EdgeConfigError("reader and sensor names must be unique")
    try:
        when_full = WhenFull(spool.get("when_full", "drop-oldest"))
    except ValueError as exc:
        raise EdgeConfigError(f"[spool] when_full: {exc}") from exc
    journal_sync = spool.get("journal_sync", "normal")
    if journal_sync not in ("normal", "full"):
        raise EdgeConfigError('[spool] journal_sync: "normal" or "full"')
    acks = data.get("acks", {})
    if not isinstance(acks, dict):
        raise EdgeConfigError("[acks] must be a section")
    unknown = acks.keys() - {"resend_after_s", "max_resend_after_s", "missing_grace_s"}
    if unknown:
        raise EdgeConfigError(f"[acks]: unknown key(s) {', '.join(sorted(unknown))}")
    policy = AckPolicy(
        **{key: float(_require(acks, "[acks]", key, float)) for key in acks},
    )
    if not 0 < policy.resend_after_s <= policy.max_resend_after_s:
        raise EdgeConfigError("[acks]: need 0 < resend_after_s <= max_resend_after_s")
    return AgentConfig(
        device_id=_require(device, "[device]", "id", str),
        certificate=resolve(_require(device, "[device]", "certificate", str)),
        key=resolve(_require(device, "[device]", "key", str)),
        location=device.get("location"),
        broker_host=str(broker.get("host", "127.0.0.1")),
        broker_port=int(broker.get("port", 18883)),
        broker_ca=resolve(_require(broker, "[broker]", "ca", str)),
        spool_path=resolve(_require(spool, "[spool]", "path", str)),
        spool_max_readings=int(spool.get("max_readings", 1_000_000)),
        spool_max_age_s=float(spool.get("max_age_days", 30)) * 86400,
        spool_when_full=when_full,
        readers=readers,
        sensors=sensors,
        acks=policy,
        journal_sync=journal_sync,
    )
