"""Environmental sensors polled by the edge agent (Modbus RTU temperature/humidity)."""

from edge.sensors.modbus import (
    ModbusSensor,
    SensorConfigError,
    SensorFailure,
    SensorSample,
    SensorSpec,
    SensorStats,
    poll_forever,
)

__all__ = [
    "ModbusSensor",
    "SensorConfigError",
    "SensorFailure",
    "SensorSample",
    "SensorSpec",
    "SensorStats",
    "poll_forever",
]
