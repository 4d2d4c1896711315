"""Kernel: readings, envelopes, verification, GS1, Merkle, batches, settings, Kubo, Fabric."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tracehub.config import Settings
from tracehub.ipfs import KuboClient


@pytest.fixture()
def kubo(stack: Settings) -> Iterator[KuboClient]:
    """A client of the stack's Kubo daemon."""
    with KuboClient(stack.ipfs_api) as client:
        yield client
