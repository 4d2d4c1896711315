"""The gateway puts a sealed batch on IPFS only if its stored envelopes still give the root the
seal recorded: the root that goes to the ledger and the object's own must be the same."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from gateway.service import BatchRootMismatchError, Gateway, GatewaySettings
from ingest.store import BatchRecord, ReadingStore
from tracehub.batch import encode_batch, read_header

ENVELOPES = [b"eyJhIjoxfQ.eyJiIjoyfQ.c2ln", b"eyJhIjoxfQ.eyJiIjozfQ.c2ln"]


@dataclass
class Store:
    envelopes: list[bytes]
    stored: list[tuple[str, str]] = field(default_factory=list)

    def batch_envelopes(self, batch_id: str) -> list[bytes]:
        return self.envelopes

    def mark_stored(self, batch_id: str, cid: str) -> str:
        self.stored.append((batch_id, cid))
        return cid


@dataclass
class Ipfs:
    added: list[bytes] = field(default_factory=list)

    def add(self, data: bytes) -> str:
        self.added.append(data)
        return f"cid-{len(self.added)}"


class Consumer:
    def publish(self, topic: str, payload: bytes) -> bool:
        return True


def _gateway(ipfs: Ipfs) -> Gateway:
    unused: Any = None
    return Gateway(
        GatewaySettings(),
        consumer=cast(Any, Consumer()),
        trust=unused,
        directory=unused,
        store_factory=unused,
        ipfs=cast(Any, ipfs),
        ledger=unused,
    )


def _record(root: str) -> BatchRecord:
    now = datetime.now(UTC)
    return BatchRecord("b-root", now, 2, now, now, 1, root, None, "sealed", None, None, None)


def test_a_batch_whose_envelopes_give_its_root_goes_on_ipfs() -> None:
    root = read_header(encode_batch("b-root", ENVELOPES)).root.hex()
    store, ipfs = Store(ENVELOPES), Ipfs()
    _gateway(ipfs)._put_on_ipfs(cast(ReadingStore, store), _record(root))
    assert store.stored == [("b-root", "cid-1")]
    assert ipfs.added == [encode_batch("b-root", ENVELOPES)]


def test_a_batch_whose_envelopes_give_another_root_does_not() -> None:
    root = read_header(encode_batch("b-root", ENVELOPES)).root.hex()
    store, ipfs = Store(ENVELOPES[:1]), Ipfs()
    with pytest.raises(BatchRootMismatchError, match="not put on IPFS"):
        _gateway(ipfs)._put_on_ipfs(cast(ReadingStore, store), _record(root))
    assert ipfs.added == [] and store.stored == []
