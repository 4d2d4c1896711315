"""MagicRF M100 / QM100 modules (JRD-4035, M5Stack Unit UHF RFID and alike).

Frame: `BB Type Cmd PL(2, big endian) Params... Checksum 7E`; Checksum is the low byte of the sum
from Type through the last parameter. Types: 0x00 command (host to module), 0x01 response,
0x02 notice. 0xFF is not a type: errors come as Type 0x01 with Cmd 0xFF and the error code as
first parameter (0x15: no tag answered in the round).

A tag notice (Type 0x02, Cmd 0x22; some firmwares answer multi-poll with 0x27) carries RSSI
(int8, dBm), PC (2), EPC (PC bits 15..11 count its 16-bit words) and the tag's CRC-16 over PC+EPC,
which is CRC-16/GENIBUS. Since BB and 7E may occur inside the parameters, frames are delimited by
PL, not by scanning for 7E.
"""

from __future__ import annotations

from crccheck.crc import Crc16Genibus  # type: ignore[import-untyped]

from edge.rfid_reader.base import (
    CommandResponse,
    FrameDecoder,
    Message,
    ReaderError,
    TagRead,
    Verdict,
)

__all__ = [
    "BAUDRATE",
    "CMD_ERROR",
    "CMD_MULTI_POLL",
    "CMD_SINGLE_POLL",
    "CMD_STOP_MULTI_POLL",
    "ERROR_CODES",
    "PROTOCOL",
    "M100Decoder",
    "checksum",
    "encode_frame",
    "multi_poll",
    "single_poll",
    "stop_multi_poll",
    "tag_crc",
]

PROTOCOL = "m100"
BAUDRATE = 115200
HEADER = 0xBB
END = 0x7E

TYPE_COMMAND = 0x00
TYPE_RESPONSE = 0x01
TYPE_NOTICE = 0x02

CMD_SINGLE_POLL = 0x22
CMD_MULTI_POLL = 0x27
CMD_STOP_MULTI_POLL = 0x28
CMD_ERROR = 0xFF
_TAG_NOTICE_COMMANDS = frozenset({CMD_SINGLE_POLL, CMD_MULTI_POLL})

MULTI_POLL_RESERVED = 0x22
MAX_PARAMS = 512
"""Longest parameter block accepted; bounds how long a false BB can hold up resync."""

_OVERHEAD = 7  # BB Type Cmd PL PL Checksum 7E
_MIN_NOTICE = 5  # RSSI + PC + CRC, zero-length EPC

ERROR_CODES: dict[int, str] = {
    0x09: "read_fail_no_tag_or_epc_mismatch",
    0x10: "write_fail_no_tag_or_epc_mismatch",
    0x12: "kill_fail_no_tag_or_epc_mismatch",
    0x13: "lock_fail_no_tag_or_epc_mismatch",
    0x14: "block_permalock_fail_no_tag_or_epc_mismatch",
    0x15: "no_tag_in_inventory_round",
    0x16: "access_password_wrong",
    0x17: "malformed_command_frame",
    0x20: "fhss_channel_search_timeout",
}


def checksum(data: bytes | bytearray) -> int:
    """Low byte of the sum of `data` (Type through the last parameter)."""
    return sum(data) & 0xFF


def tag_crc(pc_epc: bytes) -> int:
    """The tag's CRC-16/GENIBUS over PC + EPC, as the module forwards it."""
    return int(Crc16Genibus.calc(pc_epc))


def encode_frame(frame_type: int, cmd: int, params: bytes = b"") -> bytes:
    """Build a frame of any type (the host sends TYPE_COMMAND; others are for simulators/tests)."""
    if not 0 <= frame_type <= 0xFF or not 0 <= cmd <= 0xFF:
        raise ValueError("type and command are single bytes")
    if len(params) > MAX_PARAMS:
        raise ValueError(f"at most {MAX_PARAMS} parameter bytes")
    body = bytes([frame_type, cmd]) + len(params).to_bytes(2, "big") + params
    return bytes([HEADER]) + body + bytes([checksum(body), END])


def single_poll() -> bytes:
    """One inventory round: `BB 00 22 00 00 22 7E`."""
    return encode_frame(TYPE_COMMAND, CMD_SINGLE_POLL)


def multi_poll(count: int = 0xFFFF) -> bytes:
    """`count` inventory rounds (0..65535): `BB 00 27 00 03 22 <count u16> <sum> 7E`."""
    if not 0 <= count <= 0xFFFF:
        raise ValueError("count is 0..65535")
    return encode_frame(
        TYPE_COMMAND, CMD_MULTI_POLL, bytes([MULTI_POLL_RESERVED]) + count.to_bytes(2, "big")
    )


def stop_multi_poll() -> bytes:
    """Stop a multi-poll: `BB 00 28 00 00 28 7E`."""
    return encode_frame(TYPE_COMMAND, CMD_STOP_MULTI_POLL)


class M100Decoder(FrameDecoder):
    """Decoder for frames an M100 module sends."""

    protocol = PROTOCOL
    header = HEADER
    max_frame = MAX_PARAMS + _OVERHEAD

    def _check(self, buf: bytearray) -> tuple[Verdict, int]:
        if len(buf) < 5:
            return Verdict.INCOMPLETE, 0
        params_len = int.from_bytes(buf[3:5], "big")
        if params_len > MAX_PARAMS:
            return Verdict.BAD_LENGTH, 0
        size = params_len + _OVERHEAD
        if len(buf) < size:
            return Verdict.INCOMPLETE, 0
        if buf[size - 1] != END:
            return Verdict.BAD_LENGTH, 0
        if checksum(buf[1 : size - 2]) != buf[size - 2]:
            return Verdict.BAD_CHECKSUM, 0
        return Verdict.COMPLETE, size

    def _decode(self, frame: bytes) -> Message | None:
        frame_type, cmd = frame[1], frame[2]
        params = frame[5:-2]
        if frame_type == TYPE_NOTICE and cmd in _TAG_NOTICE_COMMANDS:
            return self._decode_tag(params, frame)
        if frame_type == TYPE_RESPONSE and cmd == CMD_ERROR:
            if not params:
                self.stats.bad_length += 1
                return None
            code = params[0]
            return ReaderError(
                protocol=PROTOCOL,
                command=cmd,
                code=code,
                description=ERROR_CODES.get(code, f"error_0x{code:02x}"),
                raw=frame,
            )
        if frame_type == TYPE_RESPONSE:
            return CommandResponse(protocol=PROTOCOL, command=cmd, data=params, raw=frame)
        self.stats.unknown_type += 1
        return None

    def _decode_tag(self, params: bytes, frame: bytes) -> TagRead | None:
        if len(params) < _MIN_NOTICE:
            self.stats.bad_length += 1
            return None
        pc = int.from_bytes(params[1:3], "big")
        epc_len = (pc >> 11) * 2
        if len(params) != _MIN_NOTICE + epc_len:
            self.stats.bad_length += 1
            return None
        pc_epc = params[1 : 3 + epc_len]
        if tag_crc(pc_epc) != int.from_bytes(params[3 + epc_len :], "big"):
            self.stats.bad_crc += 1
            return None
        rssi = params[0] - 0x100 if params[0] & 0x80 else params[0]
        return TagRead(
            protocol=PROTOCOL,
            epc=pc_epc[2:],
            antenna=None,
            rssi_dbm=float(rssi),
            pc=pc,
            raw=frame,
        )
