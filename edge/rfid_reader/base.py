"""Shared shapes of the reader codecs: messages, counters and the resyncing frame decoder.

Every protocol decoder is incremental: `feed()` takes whatever bytes the port produced (a frame
split over many reads, several frames at once, line noise) and returns the messages completed so
far. It never raises on input: a candidate frame that fails its length, terminator or checksum
check costs only its header byte, and the scan restarts at the next possible header, so a real
frame that started inside the bad one is still found.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

__all__ = [
    "CommandResponse",
    "DecoderStats",
    "FrameDecoder",
    "InventoryRoundEnd",
    "Message",
    "ReaderError",
    "TagRead",
    "Verdict",
]

MAX_BUFFER = 4096
"""Upper bound on bytes a decoder holds between feeds; every protocol's longest frame fits."""


@dataclass(frozen=True, slots=True)
class TagRead:
    """One sighting of a tag.

    `epc` is the tag's identifier: the EPC of a UHF tag (`id_kind` "epc"), or the 5-byte
    version+id of a 125 kHz card (`id_kind` "card_id", which is not an EPC). `antenna` is the
    antenna port as the vendor numbers it (R2000: 1..4), None when the reader does not say.
    `rssi_dbm` is None when the reader measures none (125 kHz readers).
    """

    protocol: str
    epc: bytes
    antenna: int | None
    rssi_dbm: float | None
    pc: int | None
    raw: bytes
    id_kind: Literal["epc", "card_id"] = "epc"


@dataclass(frozen=True, slots=True)
class InventoryRoundEnd:
    """End of one inventory round, with the reader's own statistics for it."""

    protocol: str
    antenna: int
    read_rate: int
    total_read: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class ReaderError:
    """An error the reader reported for `command`, with its protocol-specific `code`."""

    protocol: str
    command: int
    code: int
    description: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class CommandResponse:
    """Any other well-formed reply to a host command (firmware version, set antenna, ...)."""

    protocol: str
    command: int
    data: bytes
    raw: bytes


Message = TagRead | InventoryRoundEnd | ReaderError | CommandResponse


@dataclass(slots=True)
class DecoderStats:
    """Counters of one decoder.

    Every byte fed ends up in exactly one place, so
    `bytes_in == junk_bytes + bytes_framed + decoder.buffered` holds after every `feed()`.
    `bad_length` counts framing failures (impossible length, missing terminator, illegal
    character) and well-checksummed frames whose payload layout is impossible; `bad_crc` counts
    tag replies whose tag CRC-16 is wrong although the frame checksum is right; `bad_rssi` counts
    tag replies whose RSSI lies outside the range the reader's protocol documents: the read is
    kept, its RSSI refused (None).
    """

    frames_ok: int = 0
    bad_checksum: int = 0
    bad_length: int = 0
    junk_bytes: int = 0
    unknown_type: int = 0
    bad_crc: int = 0
    bad_rssi: int = 0
    bytes_in: int = 0
    bytes_framed: int = 0


class Verdict(enum.Enum):
    """What a protocol makes of the bytes starting at a header byte."""

    INCOMPLETE = enum.auto()
    BAD_LENGTH = enum.auto()
    BAD_CHECKSUM = enum.auto()
    COMPLETE = enum.auto()


class FrameDecoder(ABC):
    """Incremental, resyncing decoder; subclasses supply framing (`_check`) and meaning."""

    protocol: ClassVar[str]
    header: ClassVar[int]
    max_frame: ClassVar[int]
    """Longest frame the protocol allows; `_check` must call anything longer BAD_LENGTH."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        max_frame = getattr(cls, "max_frame", None)
        if max_frame is not None and max_frame > MAX_BUFFER:
            raise TypeError(f"{cls.__name__}.max_frame exceeds the {MAX_BUFFER}-byte buffer bound")

    def __init__(self) -> None:
        self.stats = DecoderStats()
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held back as the start of a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        """Add bytes from the wire; return the messages they complete, in order."""
        self.stats.bytes_in += len(data)
        self._buf += data
        return self._scan()

    def discard_partial(self) -> list[Message]:
        """Give up on the incomplete frame at the head of the buffer.

        For when the line has gone quiet mid-frame: the bytes held are not going to be completed,
        but a real frame may start inside them, so only the header byte is dropped and the rest is
        scanned again.
        """
        if not self._buf:
            return []
        self.stats.bad_length += 1
        self._drop_junk(1)
        return self._scan()

    def reset(self) -> None:
        """Forget any partial frame (e.g. after a reconnect); counters are kept."""
        self._drop_junk(len(self._buf))

    def _scan(self) -> list[Message]:
        out: list[Message] = []
        buf = self._buf
        while buf:
            start = buf.find(self.header)
            if start < 0:
                self._drop_junk(len(buf))
                break
            if start:
                self._drop_junk(start)
            verdict, size = self._check(buf)
            if verdict is Verdict.INCOMPLETE:
                break
            if verdict is Verdict.BAD_LENGTH:
                self.stats.bad_length += 1
                self._drop_junk(1)
                continue
            if verdict is Verdict.BAD_CHECKSUM:
                self.stats.bad_checksum += 1
                self._drop_junk(1)
                continue
            frame = bytes(buf[:size])
            del buf[:size]
            self.stats.bytes_framed += size
            message = self._decode(frame)
            if message is not None:
                self.stats.frames_ok += 1
                out.append(message)
        return out

    def _drop_junk(self, count: int) -> None:
        self.stats.junk_bytes += count
        del self._buf[:count]

    @abstractmethod
    def _check(self, buf: bytearray) -> tuple[Verdict, int]:
        """Judge the bytes at the head of `buf` (which starts with the header byte).

        Return the frame size with COMPLETE; the size is ignored otherwise. Must answer
        BAD_LENGTH rather than INCOMPLETE as soon as the bytes seen cannot start a valid frame.
        """

    @abstractmethod
    def _decode(self, frame: bytes) -> Message | None:
        """Turn a checksum-valid frame into a message, or count it and return None."""
