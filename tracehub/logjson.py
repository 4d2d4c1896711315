"""Structured logs: one JSON object per line, with the correlation fields a record carries.

A record's `extra` fields (`device_id`, `seq`, `batch_id`, `tx_id`, `block`, `reason`, ...)
become keys of the object, so one reading can be followed from its MQTT message to the ledger
transaction that anchors its batch: `grep '"batch_id": "X"'` over the gateway's log finds the
readings sealed into X and the transaction that anchored it (decision 0032).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

#: LogRecord's own attributes: everything else on a record came from `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

LOG_FORMATS = ("json", "text")


class JsonFormatter(logging.Formatter):
    """Formats a record as a JSON line: time, level, logger, thread, message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, log_format: str) -> None:
    """The root logger of a process: JSON lines, or the classic text format."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, not {log_format!r}")
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(message)s")
        )
    logging.basicConfig(level=level, handlers=[handler], force=True)
