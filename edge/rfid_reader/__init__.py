"""RFID reader wire protocols, byte-exact frame codecs.

One incremental decoder per protocol turns the byte stream a reader sends into typed messages;
module-level functions in `r2000` and `m100` encode the commands the host sends. The serial/TCP
loop lives in `edge.rfid_reader.transport`.
"""

from __future__ import annotations

from edge.rfid_reader.base import (
    CommandResponse,
    DecoderStats,
    FrameDecoder,
    InventoryRoundEnd,
    Message,
    ReaderError,
    TagRead,
)
from edge.rfid_reader.m100 import M100Decoder
from edge.rfid_reader.r2000 import R2000Decoder
from edge.rfid_reader.rdm6300 import Rdm6300Decoder

__all__ = [
    "PROTOCOLS",
    "CommandResponse",
    "DecoderStats",
    "FrameDecoder",
    "InventoryRoundEnd",
    "M100Decoder",
    "Message",
    "R2000Decoder",
    "Rdm6300Decoder",
    "ReaderError",
    "TagRead",
    "decoder_for",
]

PROTOCOLS: dict[str, type[FrameDecoder]] = {
    Rdm6300Decoder.protocol: Rdm6300Decoder,
    R2000Decoder.protocol: R2000Decoder,
    M100Decoder.protocol: M100Decoder,
}


def decoder_for(protocol: str) -> FrameDecoder:
    """A fresh decoder for a protocol name (`rdm6300`, `r2000`, `m100`)."""
    try:
        return PROTOCOLS[protocol]()
    except KeyError:
        raise ValueError(f"unknown reader protocol {protocol!r}") from None
