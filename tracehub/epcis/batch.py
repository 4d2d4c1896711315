"""Layout of an EPCIS event batch on IPFS (docs/epcis.md).

One header line of compact JSON, then one line per event: the exact bytes stored for the event
(compact UTF-8 JSON without raw newlines), each followed by ``\\n``. Event i of the batch is the
Merkle leaf i; its leaf data is the 32 raw bytes of the event's CBV 2.0 SHA-256.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from tracehub.errors import InvalidError

__all__ = [
    "FORMAT",
    "EventBatch",
    "EventBatchFormatError",
    "decode_event_batch",
    "encode_event_batch",
]

FORMAT = "tracehub-epcis-batch/1"
LEAF = "cbv2.0-event-sha256"


class EventBatchFormatError(InvalidError):
    """The bytes are not an event batch."""


@dataclass(frozen=True)
class EventBatch:
    batch_id: str
    root: str
    events: tuple[bytes, ...]


def encode_event_batch(batch_id: str, root: str, events: Sequence[bytes]) -> bytes:
    """The batch object: header line, then each event's stored bytes on a line of its own."""
    # Fixed member order, no whitespace: one batch has one encoding, hence one CID.
    header = {
        "format": FORMAT,
        "batch_id": batch_id,
        "count": len(events),
        "leaf": LEAF,
        "root": root,
    }
    lines = [json.dumps(header, separators=(",", ":")).encode("ascii")]
    for i, event in enumerate(events):
        if b"\n" in event:
            raise EventBatchFormatError(f"event {i} contains a newline")
        lines.append(bytes(event))
    return b"\n".join(lines) + b"\n"


def decode_event_batch(data: bytes) -> EventBatch:
    """Parse a batch object; raises :class:`EventBatchFormatError`."""
    if not data.endswith(b"\n"):
        raise EventBatchFormatError("a batch ends with a newline")
    head, *events = data[:-1].split(b"\n")
    try:
        header = json.loads(head)
    except ValueError as exc:
        raise EventBatchFormatError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise EventBatchFormatError(f"header format is not {FORMAT}")
    if header.get("count") != len(events):
        raise EventBatchFormatError(
            f"header says {header.get('count')} events, found {len(events)}"
        )
    return EventBatch(
        batch_id=str(header["batch_id"]), root=str(header["root"]), events=tuple(events)
    )
