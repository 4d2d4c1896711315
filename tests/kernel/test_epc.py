"""GS1 EPC decoding against the EPC Tag Data Standard's own examples.

The 0614141 company prefix vectors are those of the GS1 EPC Tag Data Standard (TDS) and its
companion Tag Data Translation (TDT) test set:
- SGTIN-96 `3074257BF7194E4000001A85` = urn:epc:tag:sgtin-96:3.0614141.812345.6789 (TDS encoding
  example); GTIN 80614141123458.
- SSCC-96 `3174257BF4499602D2000000` = urn:epc:tag:sscc-96:3.0614141.1234567890,
  (00)106141412345678908.
- SGLN-96 `3274257BF46072000000162E` = urn:epc:tag:sgln-96:3.0614141.12345.5678,
  (414)0614141123452(254)5678.
The SSCC/SGLN vectors were read from public TDT test suites that carry them (found through the
code index) and are re-derived below bit by bit, independently of epcpy.
"""

from __future__ import annotations

import pytest
from epcpy.utils.parsers import hex_to_tag_encodable

from tracehub.gs1 import Gs1Epc, check_digit, decode_epc

SGTIN_HEX = "3074257BF7194E4000001A85"
SSCC_HEX = "3174257BF4499602D2000000"
SGLN_HEX = "3274257BF46072000000162E"


def bits(hex_epc: str) -> str:
    return format(int(hex_epc, 16), f"0{len(hex_epc) * 4}b")


def mod10(digits: str) -> int:
    """Check digit the long way: weights 3,1,3,... from the right, round up to a multiple of 10."""
    weighted = 0
    for position, digit in enumerate(reversed(digits), start=1):
        weighted += int(digit) * (3 if position % 2 else 1)
    return (10 - weighted % 10) % 10


class TestCheckDigit:
    @pytest.mark.parametrize(
        ("body", "digit"),
        [
            ("8061414112345", 8),  # GTIN-14 80614141123458 (TDS SGTIN example)
            ("10614141234567890", 8),  # SSCC 106141412345678908 (TDS SSCC example)
            ("061414112345", 2),  # GLN 0614141123452 (TDS SGLN example)
            ("629104150021", 3),  # GTIN-13 6291041500213 (GS1 check digit calculator example)
        ],
    )
    def test_known_keys(self, body: str, digit: int) -> None:
        assert check_digit(body) == digit == mod10(body)

    def test_rejects_non_digits(self) -> None:
        with pytest.raises(ValueError):
            check_digit("12a4")


class TestSgtin96:
    def test_tds_example(self) -> None:
        assert decode_epc(SGTIN_HEX) == Gs1Epc(
            scheme="sgtin-96",
            uri="urn:epc:id:sgtin:0614141.812345.6789",
            filter_value=3,
            company_prefix="0614141",
            gs1_key="80614141123458",
            serial="6789",
            extension=None,
            digital_link="https://id.gs1.org/01/80614141123458/21/6789",
        )

    def test_fields_by_hand(self) -> None:
        b = bits(SGTIN_HEX)
        # header 8, filter 3, partition 3 (5 -> 24-bit prefix, 20-bit item ref), serial 38
        assert int(b[:8], 2) == 0x30
        assert int(b[8:11], 2) == 3
        assert int(b[11:14], 2) == 5
        assert int(b[14:38], 2) == 614141
        assert int(b[38:58], 2) == 812345
        assert int(b[58:], 2) == 6789

    def test_bytes_input_and_lowercase(self) -> None:
        assert decode_epc(bytes.fromhex(SGTIN_HEX)) == decode_epc(SGTIN_HEX.lower())

    def test_gtin_agrees_with_epcpy(self) -> None:
        tag = hex_to_tag_encodable(SGTIN_HEX)
        decoded = decode_epc(SGTIN_HEX)
        assert decoded is not None and decoded.gs1_key == tag.gs1_key()  # type: ignore[attr-defined]


class TestSscc96:
    def test_tds_example(self) -> None:
        decoded = decode_epc(SSCC_HEX)
        assert decoded is not None
        assert decoded.uri == "urn:epc:id:sscc:0614141.1234567890"
        assert decoded.gs1_key == "106141412345678908"
        assert decoded.digital_link == "https://id.gs1.org/00/106141412345678908"
        assert decoded.filter_value == 3 and decoded.serial is None

    def test_fields_by_hand(self) -> None:
        b = bits(SSCC_HEX)
        # header, filter 3, partition 5 (24-bit prefix, 34-bit serial ref), 24 reserved zero bits
        assert int(b[:8], 2) == 0x31 and int(b[8:11], 2) == 3 and int(b[11:14], 2) == 5
        assert int(b[14:38], 2) == 614141
        assert int(b[38:72], 2) == 1234567890
        assert int(b[72:], 2) == 0


class TestSgln96:
    def test_tds_example_with_extension(self) -> None:
        decoded = decode_epc(SGLN_HEX)
        assert decoded is not None
        assert decoded.uri == "urn:epc:id:sgln:0614141.12345.5678"
        assert decoded.gs1_key == "0614141123452"
        assert decoded.extension == "5678"
        assert decoded.digital_link == "https://id.gs1.org/414/0614141123452/254/5678"

    def test_fields_by_hand(self) -> None:
        b = bits(SGLN_HEX)
        # header, filter 3, partition 5 (24-bit prefix, 17-bit location ref), 41-bit extension
        assert int(b[:8], 2) == 0x32 and int(b[8:11], 2) == 3 and int(b[11:14], 2) == 5
        assert int(b[14:38], 2) == 614141
        assert int(b[38:55], 2) == 12345
        assert int(b[55:], 2) == 5678

    def test_zero_extension_is_omitted_from_digital_link(self) -> None:
        # Same location, extension field 0: built from the layout above (no published copy).
        no_ext = format(int(SGLN_HEX, 16) & ~((1 << 41) - 1), "024X")
        assert no_ext == "3274257BF460720000000000"
        decoded = decode_epc(no_ext)
        assert decoded is not None
        assert decoded.uri == "urn:epc:id:sgln:0614141.12345.0"
        assert decoded.extension is None
        assert decoded.digital_link == "https://id.gs1.org/414/0614141123452"


class TestNotDecodable:
    @pytest.mark.parametrize(
        "epc",
        [
            "E200301666130121155074EF",  # TID-style / non-GS1 header (R2000 golden frame's EPC)
            "30751FEB",  # too short for 96 bits
            "3474257BF7194E4000001A85",  # GIAI-96: GS1, but not a scheme handled here
            "307FFFFFFFFFFFFFFFFFFFFF",  # SGTIN header with partition 7 (invalid)
            "3074257BF7194E4000001A8500000001",  # trailing bits are not zero padding
            "not hex at all",
            "",
            b"",
        ],
    )
    def test_returns_none(self, epc: str | bytes) -> None:
        assert decode_epc(epc) is None

    def test_zero_padding_after_96_bits_is_accepted(self) -> None:
        assert decode_epc(SGTIN_HEX + "0000") == decode_epc(SGTIN_HEX)

    def test_m100_golden_epc_decodes(self) -> None:
        # The M100 manual's example EPC happens to be a valid SGTIN-96.
        decoded = decode_epc("30751FEB705C5904E3D50D70")
        assert decoded is not None and decoded.scheme == "sgtin-96"
        assert decoded.gs1_key == "04717276945640"
        assert check_digit(decoded.gs1_key[:-1]) == int(decoded.gs1_key[-1])
