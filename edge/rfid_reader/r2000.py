"""Impinj R2000-module readers, the "UHF RFID Reader Serial Interface Protocol" (head 0xA0).

Frame: `A0 Len Adr Cmd Data... Check`. Len counts the bytes after itself (Adr through Check);
Check is the two's complement of the 8-bit sum of every byte before it, from A0 on.

Replies to real-time inventory (0x89, and the session/target variant 0x8B) come in three shapes,
told apart by data length: 1 byte is an error code; 7 bytes end a round (antenna id, read rate
u16, total reads u32); anything else is a tag: FreqAnt (frequency point in the high 6 bits,
antenna id 0..3 in the low 2), PC (2), EPC (PC bits 15..11 count its 16-bit words), RSSI (1).

Antennas: the wire carries the antenna id 0..3; the vendor's protocol document and the reader's
housing label the ports "Antenna 1".."Antenna 4" (cmd_set_work_antenna, 0x74: "00 = antenna 1
... 03 = antenna 4"), so decoded messages carry the port number, wire id + 1, and
`set_work_antenna` takes the port number.

RSSI: the protocol document's RSSI table maps the byte 98 (0x62) to -31 dBm down to 31 (0x1F)
to -98 dBm (the receiver's sensitivity), i.e. `dBm = value - 129`, the rule pyImpinj
(hex-in/pyImpinj) applies to this family too; treat it as approximate. The field is 7 bits:
eight-port variants use the byte's top bit for the antenna group (ports 5-8), and a four-port
reader never sets it. Real readers report tags held against the antenna above the table's end
(the session-inventory log in the tests has 0x67, -26 dBm), so the accepted range is 31..127
(-98..-2 dBm). A byte outside it -- 0xB0 would read as +47 dBm, far above what the reader
transmits -- is refused: the tag read is kept (its EPC and checksum are sound) without an RSSI,
and counted (`DecoderStats.bad_rssi`).
"""

from __future__ import annotations

from edge.rfid_reader.base import (
    CommandResponse,
    FrameDecoder,
    InventoryRoundEnd,
    Message,
    ReaderError,
    TagRead,
    Verdict,
)

__all__ = [
    "BAUDRATE",
    "BROADCAST_ADDRESS",
    "CMD_GET_FIRMWARE_VERSION",
    "CMD_REAL_TIME_INVENTORY",
    "CMD_RESET",
    "CMD_SESSION_INVENTORY",
    "CMD_SET_WORK_ANTENNA",
    "ERROR_CODES",
    "PROTOCOL",
    "RSSI_RANGE",
    "R2000Decoder",
    "checksum",
    "encode_command",
    "get_firmware_version",
    "real_time_inventory",
    "reset",
    "rssi_to_dbm",
    "set_work_antenna",
]

PROTOCOL = "r2000"
BAUDRATE = 115200
HEADER = 0xA0
BROADCAST_ADDRESS = 0xFF
"""Public address every reader answers, whatever its configured address."""

CMD_RESET = 0x70
CMD_GET_FIRMWARE_VERSION = 0x72
CMD_SET_WORK_ANTENNA = 0x74
CMD_REAL_TIME_INVENTORY = 0x89
CMD_SESSION_INVENTORY = 0x8B
_INVENTORY_COMMANDS = frozenset({CMD_REAL_TIME_INVENTORY, CMD_SESSION_INVENTORY})

RSSI_OFFSET = 129
#: The RSSI bytes accepted: the table's lowest value up to the 7-bit field's top (-98..-2 dBm).
RSSI_RANGE = (31, 0x7F)
ANTENNA_PORTS = 4
_MIN_LEN = 3  # Adr + Cmd + Check
_ROUND_END_DATA = 7
_MIN_TAG_DATA = 4  # FreqAnt + PC + RSSI, zero-length EPC

ERROR_CODES: dict[int, str] = {
    0x10: "command_success",
    0x11: "command_fail",
    0x20: "mcu_reset_error",
    0x21: "cw_on_error",
    0x22: "antenna_missing_error",
    0x23: "write_flash_error",
    0x24: "read_flash_error",
    0x25: "set_output_power_error",
    0x31: "tag_inventory_error",
    0x32: "tag_read_error",
    0x33: "tag_write_error",
    0x34: "tag_lock_error",
    0x35: "tag_kill_error",
    0x36: "no_tag_error",
    0x37: "inventory_ok_but_access_fail",
    0x38: "buffer_is_empty_error",
    0x40: "access_or_password_error",
    0x41: "parameter_invalid",
    0x47: "parameter_invalid_antenna_id_out_of_range",
    0x48: "parameter_invalid_output_power_out_of_range",
}


def checksum(data: bytes | bytearray) -> int:
    """Two's complement of the 8-bit sum of `data`."""
    return -sum(data) & 0xFF


def rssi_to_dbm(value: int) -> float:
    """The reader's RSSI byte in dBm (approximate, see the module docstring)."""
    return float(value - RSSI_OFFSET)


def encode_command(cmd: int, data: bytes = b"", address: int = BROADCAST_ADDRESS) -> bytes:
    """Build a host command frame."""
    if not 0 <= cmd <= 0xFF or not 0 <= address <= 0xFF:
        raise ValueError("command and address are single bytes")
    if len(data) > 0xFF - _MIN_LEN:
        raise ValueError("command data too long for the Len byte")
    body = bytes([HEADER, len(data) + _MIN_LEN, address, cmd]) + data
    return body + bytes([checksum(body)])


def real_time_inventory(repeat: int = 0xFF, address: int = BROADCAST_ADDRESS) -> bytes:
    """cmd_real_time_inventory (0x89): one round of `repeat` inventories, tags reported as found."""
    if not 0 <= repeat <= 0xFF:
        raise ValueError("repeat is a single byte")
    return encode_command(CMD_REAL_TIME_INVENTORY, bytes([repeat]), address)


def set_work_antenna(antenna: int, address: int = BROADCAST_ADDRESS) -> bytes:
    """cmd_set_work_antenna (0x74) for antenna port 1..4 as the vendor labels it (sent as 0..3)."""
    if not 1 <= antenna <= ANTENNA_PORTS:
        raise ValueError(f"antenna port is 1..{ANTENNA_PORTS}")
    return encode_command(CMD_SET_WORK_ANTENNA, bytes([antenna - 1]), address)


def get_firmware_version(address: int = BROADCAST_ADDRESS) -> bytes:
    """cmd_get_firmware_version (0x72); the reply's data is major, minor."""
    return encode_command(CMD_GET_FIRMWARE_VERSION, b"", address)


def reset(address: int = BROADCAST_ADDRESS) -> bytes:
    """cmd_reset (0x70); the reader reboots and answers nothing on success."""
    return encode_command(CMD_RESET, b"", address)


class R2000Decoder(FrameDecoder):
    """Decoder for frames an R2000 reader sends."""

    protocol = PROTOCOL
    header = HEADER
    max_frame = 0xFF + 2

    def _check(self, buf: bytearray) -> tuple[Verdict, int]:
        if len(buf) < 2:
            return Verdict.INCOMPLETE, 0
        length = buf[1]
        if length < _MIN_LEN:
            return Verdict.BAD_LENGTH, 0
        size = length + 2
        if len(buf) < size:
            return Verdict.INCOMPLETE, 0
        if checksum(buf[: size - 1]) != buf[size - 1]:
            return Verdict.BAD_CHECKSUM, 0
        return Verdict.COMPLETE, size

    def _decode(self, frame: bytes) -> Message | None:
        cmd = frame[3]
        data = frame[4:-1]
        if cmd not in _INVENTORY_COMMANDS:
            return CommandResponse(protocol=PROTOCOL, command=cmd, data=data, raw=frame)
        if len(data) == 1:
            code = data[0]
            return ReaderError(
                protocol=PROTOCOL,
                command=cmd,
                code=code,
                description=ERROR_CODES.get(code, f"error_0x{code:02x}"),
                raw=frame,
            )
        if len(data) == _ROUND_END_DATA:
            return InventoryRoundEnd(
                protocol=PROTOCOL,
                antenna=data[0] + 1,  # the port label (wire id + 1), as for tags
                read_rate=int.from_bytes(data[1:3], "big"),
                total_read=int.from_bytes(data[3:7], "big"),
                raw=frame,
            )
        return self._decode_tag(data, frame)

    def _decode_tag(self, data: bytes, frame: bytes) -> TagRead | None:
        if len(data) < _MIN_TAG_DATA:
            self.stats.bad_length += 1
            return None
        pc = int.from_bytes(data[1:3], "big")
        epc_len = (pc >> 11) * 2
        if len(data) != _MIN_TAG_DATA + epc_len:
            self.stats.bad_length += 1
            return None
        rssi: float | None = rssi_to_dbm(data[3 + epc_len])
        if not RSSI_RANGE[0] <= data[3 + epc_len] <= RSSI_RANGE[1]:
            self.stats.bad_rssi += 1
            rssi = None
        return TagRead(
            protocol=PROTOCOL,
            epc=data[3 : 3 + epc_len],
            antenna=(data[0] & 0x03) + 1,
            rssi_dbm=rssi,
            pc=pc,
            raw=frame,
        )
