"""RDM6300 (EM4100, 125 kHz) ASCII frames.

Frame: `02` + 10 ASCII hex digits (version/customer byte + 32-bit card id) + 2 ASCII hex digits of
checksum + `03`. The checksum is the XOR of the 5 bytes the 10 digits encode. 9600 8N1; the reader
only sends, so there is no command encoder.
"""

from __future__ import annotations

from functools import reduce
from operator import xor

from edge.rfid_reader.base import FrameDecoder, Message, TagRead, Verdict

__all__ = ["BAUDRATE", "PROTOCOL", "Rdm6300Decoder", "card_id", "checksum", "encode_frame"]

PROTOCOL = "rdm6300"
BAUDRATE = 9600
STX = 0x02
ETX = 0x03
FRAME_LEN = 14
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")


def checksum(data: bytes) -> int:
    """XOR of the 5 data bytes."""
    return reduce(xor, data, 0)


def encode_frame(data: bytes) -> bytes:
    """Build the frame a reader would send for the 5-byte `data` (for simulators and tests)."""
    if len(data) != 5:
        raise ValueError("EM4100 data is 5 bytes: version/customer + 32-bit id")
    body = (data.hex() + f"{checksum(data):02x}").upper().encode("ascii")
    return bytes([STX]) + body + bytes([ETX])


def card_id(read: TagRead) -> int:
    """The 32-bit card number (the last 4 of the 5 bytes), as printed on many cards."""
    return int.from_bytes(read.epc[1:5], "big")


class Rdm6300Decoder(FrameDecoder):
    """Decoder for the RDM6300 stream."""

    protocol = PROTOCOL
    header = STX
    max_frame = FRAME_LEN

    def _check(self, buf: bytearray) -> tuple[Verdict, int]:
        seen = min(len(buf), FRAME_LEN)
        # Reject on the first non-hex digit so a stray 02 does not hold up the next real frame.
        for i in range(1, min(seen, FRAME_LEN - 1)):
            if buf[i] not in _HEX_DIGITS:
                return Verdict.BAD_LENGTH, 0
        if seen < FRAME_LEN:
            return Verdict.INCOMPLETE, 0
        if buf[FRAME_LEN - 1] != ETX:
            return Verdict.BAD_LENGTH, 0
        digits = bytes(buf[1:13]).decode("ascii")
        if checksum(bytes.fromhex(digits[:10])) != int(digits[10:], 16):
            return Verdict.BAD_CHECKSUM, 0
        return Verdict.COMPLETE, FRAME_LEN

    def _decode(self, frame: bytes) -> Message | None:
        data = bytes.fromhex(frame[1:11].decode("ascii"))
        # A card id, not an EPC; the reader has one antenna and reports no signal strength.
        return TagRead(
            protocol=PROTOCOL,
            epc=data,
            antenna=None,
            rssi_dbm=None,
            pc=None,
            raw=frame,
            id_kind="card_id",
        )
