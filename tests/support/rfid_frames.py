"""Golden RFID reader frames (RDM6300, R2000 "0xA0", MagicRF M100), each naming where it was
published, for the codec, fuzz and transport tests (this module holds no tests). A frame that
was constructed by the documented rule, or published with a typo, says so."""

from __future__ import annotations

# RDM6300: Seeed Studio wiki "Grove - 125KHz RFID Reader" (125Khz_RFID_module-UART), example card
# 62E3086CED: output 36H 32H 45H 33H 30H 38H 36H 43H 45H 44H, checksum
# (62H) XOR (E3H) XOR (08H) XOR (6CH) XOR (EDH) = 08H, framed by 02 ... 03.
RDM_GOLDEN = bytes.fromhex("02 36 32 45 33 30 38 36 43 45 44 30 38 03")

# R2000 "0xA0" protocol, IND903 module: espinr/activioty,
# docs/checkpoints/rfid-reader-python/rfid-python.md ("Sample of communication protocol").
R2K_GET_FIRMWARE_ADR1 = bytes.fromhex("A0 03 01 72 EA")
R2K_FIRMWARE_REPLY = bytes.fromhex("A0 05 01 72 01 09 DE")  # v1.9
R2K_SET_ANTENNA0_ADR1 = bytes.fromhex("A0 04 01 74 00 E7")
R2K_SET_ANTENNA_REPLY = bytes.fromhex("A0 04 01 74 10 D7")  # 0x10 command_success
R2K_INVENTORY_ADR1 = bytes.fromhex("A0 04 01 89 01 D1")
R2K_TAG_ACTIVIOTY = bytes.fromhex("A0 13 01 89 04 30 00 E2 00 30 16 66 13 01 21 15 50 74 EF 45 BF")
# Same document, end of round: its check byte is a typo (the sum rule gives AE, not BC), so it
# is used only as a published example of a frame the decoder must reject.
R2K_ROUND_END_MISPRINTED = bytes.fromhex("A0 0A 01 89 00 00 1D 00 00 00 01 BC")

# R2000 traffic logged in a public race-timing script (ICMM 2017 "yatta" reader, comment block;
# found through the code index, which did not resolve the repository name).
R2K_TAG_YATTA = bytes.fromhex("A0 13 01 89 8C 30 00 30 08 33 B2 DD D9 01 40 00 00 00 01 37 BB")
R2K_ROUND_END_YATTA = bytes.fromhex("A0 0A 01 89 00 00 11 00 00 00 05 B6")
R2K_ANTENNA_MISSING_YATTA = bytes.fromhex("A0 04 01 89 22 B0")
R2K_SET_ANTENNA1_YATTA = bytes.fromhex("A0 04 01 74 01 E6")

# cmd 0x8B (customized session/target inventory), same reply layout as 0x89: reader log in a
# public R2000 notes file found through the code index (repository name not resolved).
R2K_SESSION_TAG = bytes.fromhex("A0 13 01 8B 10 30 00 30 09 66 37 81 DB 02 97 48 76 FC 6A 67 2B")
R2K_SESSION_ROUND_END = bytes.fromhex("A0 0A 01 8B 00 00 19 00 00 00 01 B0")

# M100: MagicRF M100 user protocol as published in M5Stack's Unit-RFID-UHF-Protocol-EN.pdf
# (transcribed in public markdown found through the code index): sections 2.2-2.4 and 2.1.2.
M100_SINGLE_POLL = bytes.fromhex("BB 00 22 00 00 22 7E")
M100_MULTI_POLL_10000 = bytes.fromhex("BB 00 27 00 03 22 27 10 83 7E")
M100_STOP = bytes.fromhex("BB 00 28 00 00 28 7E")
M100_STOP_OK = bytes.fromhex("BB 01 28 00 01 00 2A 7E")
M100_NOTICE = bytes.fromhex(
    "BB 02 22 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E"
)
M100_NO_TAG = bytes.fromhex("BB 01 FF 00 01 15 16 7E")
M100_HW_VERSION = bytes.fromhex("BB 01 03 00 0B 00 4D 31 30 30 20 56 31 2E 30 30 22 7E")
# The same transcription shows the multi-poll notice as the single-poll one with Cmd 0x27 but the
# old check byte EF; the sum rule gives F4, so this published frame must be rejected.
M100_NOTICE_27_MISPRINTED = bytes.fromhex(
    "BB 02 27 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E"
)
# Constructed by the documented rule (no published copy found): multi-poll with count 0xFFFF.
M100_MULTI_POLL_FFFF = bytes.fromhex("BB 00 27 00 03 22 FF FF 4A 7E")
