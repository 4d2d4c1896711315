"""A small client for Kubo's RPC API (https://docs.ipfs.tech/reference/kubo/rpc/): add, cat, pin.

Written on httpx rather than ipfshttpclient, which refuses Kubo versions newer than it knows
(see docs/decisions/0002-kubo-client.md).
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from tracehub.errors import UpstreamError


class IPFSError(UpstreamError):
    """Kubo answered with an error, or could not be reached."""


class ContentStore(Protocol):
    """What a part needs of IPFS to keep a document and read it back (KuboClient is one)."""

    def add(self, data: bytes, *, pin: bool = True, filename: str = "data") -> str: ...

    def cat(self, cid: str) -> bytes: ...


class KuboClient:
    """Kubo RPC over HTTP. Every RPC call is a POST (Kubo refuses GET on /api/v0)."""

    def __init__(self, api_url: str = "http://127.0.0.1:15001", timeout: float = 30.0) -> None:
        self._http = httpx.Client(base_url=api_url.rstrip("/") + "/api/v0", timeout=timeout)

    def __enter__(self) -> KuboClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(
        self, command: str, params: dict[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = self._http.post(f"/{command}", params=params, **kwargs)
        except httpx.HTTPError as exc:
            raise IPFSError(f"Kubo RPC {command} failed: {exc}") from exc
        if response.status_code != 200:
            try:
                message = response.json().get("Message", response.text)
            except ValueError:
                message = response.text
            raise IPFSError(f"Kubo RPC {command} answered {response.status_code}: {message}")
        return response

    def version(self) -> str:
        """The daemon's version, e.g. "0.42.0"."""
        version: str = self._call("version").json()["Version"]
        return version

    def add(self, data: bytes, *, pin: bool = True, filename: str = "data") -> str:
        """Store bytes as one object and return its CID (CIDv1, raw leaves, sha2-256)."""
        params = {
            "cid-version": 1,
            "raw-leaves": "true",
            "pin": str(pin).lower(),
            "hash": "sha2-256",
        }
        response = self._call("add", params, files={"file": (filename, data)})
        cid: str = response.json()["Hash"]
        return cid

    def cat(self, cid: str, *, offline: bool = False) -> bytes:
        """The bytes stored under a CID; ``offline``: only if this node holds them (no search
        of the swarm, which would wait for the request timeout when no peer has them)."""
        params: dict[str, Any] = {"arg": cid}
        if offline:
            params["offline"] = "true"
        return self._call("cat", params).content

    def pin_add(self, cid: str) -> None:
        """Pin a CID so garbage collection keeps it."""
        self._call("pin/add", {"arg": cid})

    def pin_rm(self, cid: str) -> None:
        """Unpin a CID."""
        self._call("pin/rm", {"arg": cid})

    def pinned(self) -> set[str]:
        """The CIDs pinned recursively (what `add` pins), in one call."""
        keys = self._call("pin/ls", {"type": "recursive"}).json().get("Keys") or {}
        return set(keys)

    def is_pinned(self, cid: str) -> bool:
        """Whether the CID is pinned (directly or recursively)."""
        try:
            keys = self._call("pin/ls", {"arg": cid}).json().get("Keys", {})
        except IPFSError as exc:
            if "not pinned" in str(exc):
                return False
            raise
        return cid in keys
