"""A content store replicated over several Kubo nodes: written to all, read from any.

`add` returns a CID only once every node has the object pinned, so a caller that anchors the CID
next (batches, event batches, inspection reports, trade documents) never anchors an object held
by fewer than all nodes. A node that is down at write time is retried until the write timeout,
then the write fails with `ReplicationError` and the caller retries later, as it does for any
IPFS failure. `cat` tries the nodes in turn. `repin` copies what a node lost, or missed while it
was down, from a node that holds it. The reasons: docs/decisions/0031-replicated-ipfs.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tracehub.config import Settings
from tracehub.ipfs import IPFSError, KuboClient


class ReplicationError(IPFSError):
    """An object could not be pinned on every node within the write timeout."""


@dataclass
class RepinReport:
    """What a re-pin pass found: CIDs checked, copies made per node, CIDs no node could supply."""

    checked: int = 0
    repinned: dict[str, int] = field(default_factory=dict)
    unavailable: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)


class ReplicatedStore:
    """The `ContentStore` of several Kubo nodes (their RPC URLs, in the order reads try them)."""

    def __init__(
        self,
        api_urls: Sequence[str],
        *,
        write_timeout: float = 30.0,
        retry_interval: float = 0.5,
        request_timeout: float = 30.0,
    ) -> None:
        if not api_urls:
            raise ValueError("a replicated store needs at least one Kubo node")
        self.urls = tuple(api_urls)
        self.write_timeout = write_timeout
        self.retry_interval = retry_interval
        self.nodes = tuple(KuboClient(u, timeout=request_timeout) for u in self.urls)

    def __enter__(self) -> ReplicatedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def add(self, data: bytes, *, pin: bool = True, filename: str = "data") -> str:
        """Add and pin the bytes on every node; the CID once all hold it, else ReplicationError.

        A node that fails is retried every `retry_interval` seconds until `write_timeout`; nodes
        that already hold the object are not asked again. A node that hangs rather than refuses
        costs up to the request timeout per attempt, so the wait is bounded by the sum of both.
        """
        deadline = time.monotonic() + self.write_timeout
        cids: dict[int, str] = {}
        errors: dict[int, IPFSError] = {}
        while True:
            for i, node in enumerate(self.nodes):
                if i in cids:
                    continue
                try:
                    cids[i] = node.add(data, pin=pin, filename=filename)
                    errors.pop(i, None)
                except IPFSError as exc:
                    errors[i] = exc
            if not errors:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = "; ".join(f"{self.urls[i]}: {exc}" for i, exc in errors.items())
                raise ReplicationError(
                    f"object not pinned on all {len(self.nodes)} Kubo nodes after "
                    f"{self.write_timeout:g} s (held by {len(cids)}); failing: {missing}"
                )
            time.sleep(min(self.retry_interval, remaining))
        distinct = set(cids.values())
        if len(distinct) != 1:  # the same bytes and parameters must name the same CID
            raise ReplicationError(f"Kubo nodes disagree on the object's CID: {sorted(distinct)}")
        return distinct.pop()

    def cat(self, cid: str) -> bytes:
        """The bytes under a CID, from the first node that answers."""
        errors: list[str] = []
        for url, node in zip(self.urls, self.nodes, strict=True):
            try:
                return node.cat(cid, offline=True)
            except IPFSError as exc:
                errors.append(f"{url}: {exc}")
        raise IPFSError(f"no Kubo node could serve {cid}: {'; '.join(errors)}")

    def repin(self, cids: Iterable[str]) -> RepinReport:
        """Make every reachable node pin every CID, copying bytes from a node that has them.

        The copy is an `add` of the bytes read from another node: it needs no swarm connection
        between the nodes and gives the same CID, since every writer uses the same parameters.
        """
        report = RepinReport()
        pins: dict[int, set[str]] = {}  # each reachable node's pin set, read once
        for i, node in enumerate(self.nodes):
            try:
                pins[i] = node.pinned()
            except IPFSError:
                report.unreachable.append(self.urls[i])
        live = sorted(pins)
        report.repinned = {self.urls[i]: 0 for i in live}
        for cid in cids:
            report.checked += 1
            holders = [i for i in live if cid in pins[i]]
            lacking = [i for i in live if i not in holders]
            if not lacking:
                continue
            data = self._read_from(cid, holders)
            if data is None:
                report.unavailable.append(cid)
                continue
            for i in lacking:
                copied = self.nodes[i].add(data)
                if copied != cid:
                    self.nodes[i].pin_rm(copied)
                    raise ReplicationError(f"{cid} copied to {self.urls[i]} hashed to {copied}")
                report.repinned[self.urls[i]] += 1
        return report

    def _read_from(self, cid: str, holders: Sequence[int]) -> bytes | None:
        for i in holders:
            try:
                return self.nodes[i].cat(cid, offline=True)
            except IPFSError:
                continue
        return None


#: What `content_store` returns: both are `ContentStore`s and context managers.
StackStore = KuboClient | ReplicatedStore


def content_store(settings: Settings) -> StackStore:
    """The content store of the stack's settings: the one Kubo node as before, or all of them.

    With one endpoint a plain `KuboClient` keeps the single topology's behaviour exactly (an
    unreachable node fails at once); with several, writes wait for every node.
    """
    urls = settings.ipfs_endpoints
    if len(urls) == 1:
        return KuboClient(urls[0])
    timeout = settings.ipfs_write_timeout_s
    return ReplicatedStore(urls, write_timeout=timeout, request_timeout=max(timeout, 5.0))
