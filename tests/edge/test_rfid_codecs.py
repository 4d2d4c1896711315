"""Byte-exact tests of the RFID reader codecs against published frames.

Every golden frame (tests/support/rfid_frames.py) names where it was published. Checksums are
re-computed here by an independent route (not the codec's helper) before a frame is trusted.
"""

from __future__ import annotations

from functools import reduce

import pytest
from crccheck.crc import Crc16Genibus  # type: ignore[import-untyped]

from edge.rfid_reader import (
    CommandResponse,
    FrameDecoder,
    InventoryRoundEnd,
    M100Decoder,
    Message,
    R2000Decoder,
    Rdm6300Decoder,
    ReaderError,
    TagRead,
    decoder_for,
    m100,
    r2000,
    rdm6300,
)
from tests.support.rfid_frames import (
    M100_HW_VERSION,
    M100_MULTI_POLL_10000,
    M100_MULTI_POLL_FFFF,
    M100_NO_TAG,
    M100_NOTICE,
    M100_NOTICE_27_MISPRINTED,
    M100_SINGLE_POLL,
    M100_STOP,
    M100_STOP_OK,
    R2K_ANTENNA_MISSING_YATTA,
    R2K_FIRMWARE_REPLY,
    R2K_GET_FIRMWARE_ADR1,
    R2K_INVENTORY_ADR1,
    R2K_ROUND_END_MISPRINTED,
    R2K_ROUND_END_YATTA,
    R2K_SESSION_ROUND_END,
    R2K_SESSION_TAG,
    R2K_SET_ANTENNA0_ADR1,
    R2K_SET_ANTENNA1_YATTA,
    R2K_SET_ANTENNA_REPLY,
    R2K_TAG_ACTIVIOTY,
    R2K_TAG_YATTA,
    RDM_GOLDEN,
)


def feed_all(decoder: FrameDecoder, data: bytes, chunk: int | None = None) -> list[Message]:
    step = chunk or max(len(data), 1)
    out: list[Message] = []
    for i in range(0, len(data), step):
        out.extend(decoder.feed(data[i : i + step]))
    return out


def assert_accounted(decoder: FrameDecoder) -> None:
    s = decoder.stats
    assert s.bytes_in == s.junk_bytes + s.bytes_framed + decoder.buffered


# --- independent checksum routes ----------------------------------------------------------------


def xor_of(data: bytes) -> int:
    value = 0
    for b in data:
        value ^= b
    return value


def crc16_genibus_bitwise(data: bytes) -> int:
    """CRC-16/GENIBUS by its parameters: poly 0x1021, init 0xFFFF, unreflected, xorout 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc ^ 0xFFFF


class TestChecksums:
    def test_crc16_genibus_check_value(self) -> None:
        # Published check value of CRC-16/GENIBUS (CRC RevEng catalogue): "123456789" -> 0xD64E.
        assert Crc16Genibus.calc(b"123456789") == 0xD64E
        assert crc16_genibus_bitwise(b"123456789") == 0xD64E
        assert m100.tag_crc(b"123456789") == 0xD64E

    def test_rdm6300_xor_of_golden(self) -> None:
        data = bytes.fromhex(RDM_GOLDEN[1:11].decode())
        assert data == bytes.fromhex("62E3086CED")
        assert xor_of(data) == 0x08 == int(RDM_GOLDEN[11:13], 16)
        assert rdm6300.checksum(data) == 0x08

    @pytest.mark.parametrize(
        "frame",
        [
            R2K_GET_FIRMWARE_ADR1,
            R2K_FIRMWARE_REPLY,
            R2K_SET_ANTENNA0_ADR1,
            R2K_SET_ANTENNA_REPLY,
            R2K_INVENTORY_ADR1,
            R2K_TAG_ACTIVIOTY,
            R2K_TAG_YATTA,
            R2K_ROUND_END_YATTA,
            R2K_ANTENNA_MISSING_YATTA,
            R2K_SET_ANTENNA1_YATTA,
            R2K_SESSION_TAG,
            R2K_SESSION_ROUND_END,
        ],
    )
    def test_r2000_golden_sums_to_zero(self, frame: bytes) -> None:
        # Two's-complement check: all bytes including Check sum to 0 mod 256.
        assert sum(frame) % 256 == 0
        assert frame[1] == len(frame) - 2
        assert r2000.checksum(frame[:-1]) == frame[-1]

    def test_r2000_misprinted_round_end_does_not_sum_to_zero(self) -> None:
        assert sum(R2K_ROUND_END_MISPRINTED) % 256 != 0
        assert (256 - sum(R2K_ROUND_END_MISPRINTED[:-1]) % 256) % 256 == 0xAE

    @pytest.mark.parametrize(
        "frame",
        [
            M100_SINGLE_POLL,
            M100_MULTI_POLL_10000,
            M100_STOP,
            M100_STOP_OK,
            M100_NOTICE,
            M100_NO_TAG,
            M100_HW_VERSION,
            M100_MULTI_POLL_FFFF,
        ],
    )
    def test_m100_golden_sum(self, frame: bytes) -> None:
        assert (sum(frame[1:-2]) & 0xFF) == frame[-2]
        assert int.from_bytes(frame[3:5], "big") == len(frame) - 7

    def test_m100_notice_tag_crc_is_genibus_over_pc_epc(self) -> None:
        pc_epc = M100_NOTICE[6:20]
        assert pc_epc.hex().upper() == "340030751FEB705C5904E3D50D70"
        assert crc16_genibus_bitwise(pc_epc) == 0x3A76 == int.from_bytes(M100_NOTICE[20:22], "big")
        assert m100.tag_crc(pc_epc) == 0x3A76


# --- RDM6300 ------------------------------------------------------------------------------------


class TestRdm6300:
    def test_golden(self) -> None:
        dec = Rdm6300Decoder()
        [msg] = dec.feed(RDM_GOLDEN)
        # A card id, not an EPC: no antenna, no RSSI (the reader measures none).
        assert msg == TagRead(
            "rdm6300", bytes.fromhex("62E3086CED"), None, None, None, RDM_GOLDEN, "card_id"
        )
        assert isinstance(msg, TagRead)
        assert rdm6300.card_id(msg) == 0xE3086CED
        assert dec.stats.frames_ok == 1 and dec.buffered == 0
        assert_accounted(dec)

    def test_encode_frame_reproduces_golden(self) -> None:
        assert rdm6300.encode_frame(bytes.fromhex("62E3086CED")) == RDM_GOLDEN
        with pytest.raises(ValueError):
            rdm6300.encode_frame(b"\x01\x02")

    def test_lowercase_hex_accepted(self) -> None:
        frame = RDM_GOLDEN[:1] + RDM_GOLDEN[1:13].lower() + RDM_GOLDEN[13:]
        [msg] = Rdm6300Decoder().feed(frame)
        assert isinstance(msg, TagRead) and msg.epc == bytes.fromhex("62E3086CED")

    def test_byte_by_byte(self) -> None:
        dec = Rdm6300Decoder()
        msgs = feed_all(dec, RDM_GOLDEN * 3, chunk=1)
        assert len(msgs) == 3 and dec.stats.frames_ok == 3
        assert_accounted(dec)

    def test_junk_before_header(self) -> None:
        dec = Rdm6300Decoder()
        junk = b"\xff\x00noise\x03\x03"
        [msg] = dec.feed(junk + RDM_GOLDEN)
        assert isinstance(msg, TagRead)
        assert dec.stats.junk_bytes == len(junk)
        assert_accounted(dec)

    def test_bad_checksum_dropped_and_counted(self) -> None:
        bad = RDM_GOLDEN[:11] + b"09" + RDM_GOLDEN[13:]
        dec = Rdm6300Decoder()
        assert dec.feed(bad) == []
        assert dec.stats.bad_checksum == 1 and dec.stats.frames_ok == 0
        assert dec.buffered == 0
        assert_accounted(dec)

    def test_missing_terminator_and_truncated_frame(self) -> None:
        dec = Rdm6300Decoder()
        no_etx = RDM_GOLDEN[:13] + b"\x04"
        truncated = RDM_GOLDEN[:7]
        msgs = dec.feed(no_etx + truncated + RDM_GOLDEN)
        assert len(msgs) == 1
        assert dec.stats.bad_length == 2
        assert_accounted(dec)

    def test_interleaved_good_and_bad(self) -> None:
        bad = RDM_GOLDEN[:11] + b"FF" + RDM_GOLDEN[13:]
        stream = RDM_GOLDEN + bad + b"\x02\x02" + RDM_GOLDEN + bad + RDM_GOLDEN
        dec = Rdm6300Decoder()
        msgs = feed_all(dec, stream, chunk=5)
        assert len(msgs) == 3
        assert dec.stats.bad_checksum == 2
        assert_accounted(dec)


# --- R2000 --------------------------------------------------------------------------------------


class TestR2000Encoders:
    def test_published_host_commands(self) -> None:
        assert r2000.real_time_inventory(1, address=1) == R2K_INVENTORY_ADR1
        # Ports as the vendor labels them (1..4); the wire carries 0..3.
        assert r2000.set_work_antenna(1, address=1) == R2K_SET_ANTENNA0_ADR1
        assert r2000.set_work_antenna(2, address=1) == R2K_SET_ANTENNA1_YATTA
        assert r2000.get_firmware_version(address=1) == R2K_GET_FIRMWARE_ADR1

    def test_constructed_commands_cross_checked(self) -> None:
        # No published copies: built by the rule and checked by the sum-to-zero property.
        for frame, head in [
            (r2000.reset(address=1), "A0 03 01 70"),
            (r2000.real_time_inventory(), "A0 04 FF 89 FF"),
            (r2000.set_work_antenna(4), "A0 04 FF 74 03"),
        ]:
            assert frame[:-1] == bytes.fromhex(head)
            assert sum(frame) % 256 == 0
        assert r2000.reset(address=1) == bytes.fromhex("A0 03 01 70 EC")
        assert r2000.real_time_inventory() == bytes.fromhex("A0 04 FF 89 FF D5")

    def test_argument_ranges(self) -> None:
        for port in (0, 5):
            with pytest.raises(ValueError):
                r2000.set_work_antenna(port)
        with pytest.raises(ValueError):
            r2000.real_time_inventory(256)
        with pytest.raises(ValueError):
            r2000.encode_command(0x89, bytes(253))


class TestR2000Decoder:
    def test_tag_activioty(self) -> None:
        [msg] = R2000Decoder().feed(R2K_TAG_ACTIVIOTY)
        assert msg == TagRead(
            protocol="r2000",
            epc=bytes.fromhex("E200301666130121155074EF"),
            antenna=1,  # wire id 0: the port labelled "Antenna 1"
            rssi_dbm=0x45 - 129,
            pc=0x3000,
            raw=R2K_TAG_ACTIVIOTY,
        )

    def test_tag_yatta_frequency_bits_do_not_leak_into_antenna(self) -> None:
        [msg] = R2000Decoder().feed(R2K_TAG_YATTA)
        assert isinstance(msg, TagRead)
        assert msg.antenna == 1  # FreqAnt 0x8C: frequency point 35, antenna id 0 = port 1
        assert msg.epc == bytes.fromhex("300833B2DDD9014000000001")
        assert msg.rssi_dbm == -74.0

    def test_round_end(self) -> None:
        [msg] = R2000Decoder().feed(R2K_ROUND_END_YATTA)
        assert msg == InventoryRoundEnd("r2000", 1, 0x11, 5, R2K_ROUND_END_YATTA)

    def test_antenna_missing_error(self) -> None:
        [msg] = R2000Decoder().feed(R2K_ANTENNA_MISSING_YATTA)
        assert isinstance(msg, ReaderError)
        assert (msg.command, msg.code, msg.description) == (0x89, 0x22, "antenna_missing_error")

    def test_command_responses(self) -> None:
        msgs = R2000Decoder().feed(R2K_FIRMWARE_REPLY + R2K_SET_ANTENNA_REPLY)
        assert msgs == [
            CommandResponse("r2000", 0x72, b"\x01\x09", R2K_FIRMWARE_REPLY),
            CommandResponse("r2000", 0x74, b"\x10", R2K_SET_ANTENNA_REPLY),
        ]

    def test_session_inventory_layout(self) -> None:
        tag, end = R2000Decoder().feed(R2K_SESSION_TAG + R2K_SESSION_ROUND_END)
        assert isinstance(tag, TagRead) and tag.epc == bytes.fromhex("3009663781DB02974876FC6A")
        assert tag.rssi_dbm == 0x67 - 129
        assert isinstance(end, InventoryRoundEnd) and end.total_read == 1

    @pytest.mark.parametrize(("byte", "kept"), [(0x1E, False), (0x1F, True), (0x7F, True)])
    def test_rssi_outside_documented_range_refused_and_counted(self, byte: int, kept: bool) -> None:
        frame = r2000.encode_command(0x89, bytes([0x02, 0x30, 0x00]) + bytes(12) + bytes([byte]), 1)
        [tag] = R2000Decoder().feed(frame)
        assert isinstance(tag, TagRead) and tag.antenna == 3
        assert tag.rssi_dbm == (byte - 129 if kept else None)

    def test_rssi_byte_reading_as_plus_47_dbm_refused(self) -> None:
        dec = R2000Decoder()
        frame = r2000.encode_command(0x89, bytes([0x00, 0x30, 0x00]) + bytes(12) + b"\xb0", 1)
        assert 0xB0 - 129 == 47
        [tag] = dec.feed(frame)
        # The read is kept (EPC and checksum are sound); the impossible RSSI is not.
        assert isinstance(tag, TagRead) and tag.rssi_dbm is None and tag.epc == bytes(12)
        assert (dec.stats.bad_rssi, dec.stats.frames_ok) == (1, 1)
        assert_accounted(dec)

    def test_misprinted_round_end_rejected(self) -> None:
        dec = R2000Decoder()
        assert dec.feed(R2K_ROUND_END_MISPRINTED) == []
        assert dec.stats.bad_checksum == 1
        assert_accounted(dec)

    def test_byte_by_byte_round(self) -> None:
        stream = R2K_TAG_YATTA + R2K_TAG_ACTIVIOTY + R2K_ROUND_END_YATTA
        dec = R2000Decoder()
        msgs = feed_all(dec, stream, chunk=1)
        assert msgs == R2000Decoder().feed(stream)
        assert [type(m) for m in msgs] == [TagRead, TagRead, InventoryRoundEnd]
        assert_accounted(dec)

    def test_junk_with_false_header_before_frame(self) -> None:
        # A0 inside the junk starts a bogus candidate; resync must still find the real frame.
        junk = b"\x00\xa0\x13\x55\xa0\x01"
        dec = R2000Decoder()
        msgs = feed_all(dec, junk + R2K_TAG_YATTA + R2K_ROUND_END_YATTA, chunk=3)
        assert [type(m) for m in msgs] == [TagRead, InventoryRoundEnd]
        assert dec.stats.junk_bytes == len(junk)
        assert_accounted(dec)

    def test_corrupted_checksum_dropped(self) -> None:
        bad = R2K_TAG_YATTA[:-1] + bytes([R2K_TAG_YATTA[-1] ^ 0x01])
        dec = R2000Decoder()
        msgs = dec.feed(bad + R2K_ROUND_END_YATTA)
        assert [type(m) for m in msgs] == [InventoryRoundEnd]
        assert dec.stats.bad_checksum == 1
        assert_accounted(dec)

    def test_impossible_len_byte(self) -> None:
        dec = R2000Decoder()
        msgs = dec.feed(b"\xa0\x02\x01" + R2K_ROUND_END_YATTA)
        assert len(msgs) == 1 and dec.stats.bad_length == 1
        assert_accounted(dec)

    def test_epc_length_disagreeing_with_pc_is_dropped(self) -> None:
        # Well-checksummed but PC says 8 words while 6 are present.
        data = bytes([0x04, 0x40, 0x00]) + bytes(12) + bytes([0x45])
        frame = r2000.encode_command(0x89, data, address=1)
        dec = R2000Decoder()
        assert dec.feed(frame) == []
        assert dec.stats.bad_length == 1 and dec.stats.frames_ok == 0
        assert_accounted(dec)

    def test_interleaved_good_and_bad(self) -> None:
        bad = bytearray(R2K_TAG_ACTIVIOTY)
        bad[10] ^= 0xFF
        # A lone A0 followed by a Len below 3 is rejected at once; one followed by a plausible
        # Len would hold the scan until the line goes idle (see test_discard_partial_...).
        stream = (
            R2K_TAG_YATTA
            + bytes(bad)
            + b"\xa0\x01"
            + R2K_TAG_ACTIVIOTY
            + bytes(bad)
            + R2K_ROUND_END_YATTA
        )
        dec = R2000Decoder()
        msgs = feed_all(dec, stream, chunk=7)
        assert [type(m) for m in msgs] == [TagRead, TagRead, InventoryRoundEnd]
        assert dec.stats.bad_checksum >= 2
        assert_accounted(dec)


# --- M100 ---------------------------------------------------------------------------------------


class TestM100Encoders:
    def test_published_commands(self) -> None:
        assert m100.single_poll() == M100_SINGLE_POLL
        assert m100.multi_poll(10000) == M100_MULTI_POLL_10000
        assert m100.stop_multi_poll() == M100_STOP

    def test_multi_poll_ffff_constructed(self) -> None:
        assert m100.multi_poll() == M100_MULTI_POLL_FFFF
        with pytest.raises(ValueError):
            m100.multi_poll(0x10000)


class TestM100Decoder:
    def test_golden_notice(self) -> None:
        [msg] = M100Decoder().feed(M100_NOTICE)
        assert msg == TagRead(
            protocol="m100",
            epc=bytes.fromhex("30751FEB705C5904E3D50D70"),
            antenna=None,
            rssi_dbm=-55.0,  # 0xC9 as int8, which the manual gives as -55 dBm
            pc=0x3400,
            raw=M100_NOTICE,
        )

    def test_no_tag_error(self) -> None:
        [msg] = M100Decoder().feed(M100_NO_TAG)
        assert msg == ReaderError("m100", 0xFF, 0x15, "no_tag_in_inventory_round", M100_NO_TAG)

    def test_responses(self) -> None:
        stop_ok, info = M100Decoder().feed(M100_STOP_OK + M100_HW_VERSION)
        assert stop_ok == CommandResponse("m100", 0x28, b"\x00", M100_STOP_OK)
        assert isinstance(info, CommandResponse) and info.data == b"\x00M100 V1.00"

    def test_multi_poll_notice_with_cmd_27(self) -> None:
        frame = m100.encode_frame(m100.TYPE_NOTICE, 0x27, M100_NOTICE[5:-2])
        assert frame[-2] == 0xF4
        [msg] = M100Decoder().feed(frame)
        assert isinstance(msg, TagRead) and msg.epc == bytes.fromhex("30751FEB705C5904E3D50D70")

    def test_misprinted_cmd_27_notice_rejected(self) -> None:
        dec = M100Decoder()
        assert dec.feed(M100_NOTICE_27_MISPRINTED) == []
        assert dec.stats.bad_checksum == 1
        assert_accounted(dec)

    def test_tag_crc_mismatch_dropped_and_counted(self) -> None:
        params = bytearray(M100_NOTICE[5:-2])
        params[5] ^= 0x01  # one EPC bit; frame checksum recomputed so only the tag CRC is wrong
        frame = m100.encode_frame(m100.TYPE_NOTICE, 0x22, bytes(params))
        dec = M100Decoder()
        assert dec.feed(frame + M100_NOTICE) == [
            TagRead(
                "m100", bytes.fromhex("30751FEB705C5904E3D50D70"), None, -55.0, 0x3400, M100_NOTICE
            )
        ]
        assert dec.stats.bad_crc == 1 and dec.stats.frames_ok == 1
        assert_accounted(dec)

    def test_unknown_type_counted(self) -> None:
        dec = M100Decoder()
        frames = m100.encode_frame(0x05, 0x22) + M100_SINGLE_POLL  # odd type, and a command echo
        assert dec.feed(frames) == []
        assert dec.stats.unknown_type == 2
        assert_accounted(dec)

    def test_byte_by_byte(self) -> None:
        stream = M100_NOTICE + M100_NO_TAG + M100_NOTICE
        dec = M100Decoder()
        msgs = feed_all(dec, stream, chunk=1)
        assert [type(m) for m in msgs] == [TagRead, ReaderError, TagRead]
        assert_accounted(dec)

    def test_junk_before_header_including_false_bb(self) -> None:
        junk = b"\x7e\x7e\xbb\x02\x22\x00\x11\x01"
        dec = M100Decoder()
        # The false BB announces 17 parameter bytes; the real notice starts inside that span.
        msgs = feed_all(dec, junk + M100_NOTICE + M100_NO_TAG, chunk=4)
        assert [type(m) for m in msgs] == [TagRead, ReaderError]
        assert dec.stats.junk_bytes == len(junk)
        assert_accounted(dec)

    def test_missing_end_byte(self) -> None:
        dec = M100Decoder()
        msgs = dec.feed(M100_NOTICE[:-1] + b"\x00" + M100_NO_TAG)
        assert [type(m) for m in msgs] == [ReaderError]
        assert dec.stats.bad_length == 1
        assert_accounted(dec)

    def test_oversized_length_rejected_at_once(self) -> None:
        dec = M100Decoder()
        msgs = dec.feed(b"\xbb\x02\x22\xff\xff" + M100_NO_TAG)
        assert [type(m) for m in msgs] == [ReaderError]
        assert dec.stats.bad_length == 1

    def test_interleaved_good_and_bad(self) -> None:
        bad = bytearray(M100_NOTICE)
        bad[-2] ^= 0x10
        stream = bytes(bad) + M100_NOTICE + b"\xbb\xbb" + bytes(bad) + M100_NO_TAG + M100_NOTICE
        dec = M100Decoder()
        msgs = feed_all(dec, stream, chunk=9)
        assert [type(m) for m in msgs] == [TagRead, ReaderError, TagRead]
        assert dec.stats.bad_checksum == 2
        assert_accounted(dec)


# --- shared behaviour ---------------------------------------------------------------------------


def test_decoder_for_names() -> None:
    assert isinstance(decoder_for("rdm6300"), Rdm6300Decoder)
    assert isinstance(decoder_for("r2000"), R2000Decoder)
    assert isinstance(decoder_for("m100"), M100Decoder)
    with pytest.raises(ValueError):
        decoder_for("llrp")


def test_discard_partial_rescans_what_follows() -> None:
    # A truncated frame followed by a complete one that started inside its announced length.
    dec = R2000Decoder()
    assert dec.feed(b"\xa0\x20\x01\x89" + R2K_ROUND_END_YATTA) == []
    assert dec.buffered > 0
    [msg] = dec.discard_partial()
    assert isinstance(msg, InventoryRoundEnd)
    assert dec.buffered == 0 and dec.stats.bad_length == 1
    assert dec.discard_partial() == []
    assert_accounted(dec)


def test_reset_drops_partial_frame() -> None:
    dec = M100Decoder()
    dec.feed(M100_NOTICE[:10])
    dec.reset()
    assert dec.buffered == 0
    assert dec.feed(M100_NOTICE[10:]) == []
    assert_accounted(dec)


def test_xor_reference_matches_reduce() -> None:
    data = bytes(range(40))
    assert xor_of(data) == reduce(lambda a, b: a ^ b, data, 0) == rdm6300.checksum(data)
