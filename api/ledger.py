"""The API's one way to the ledger: a FastAPI dependency, :data:`Ledger`, giving the app's one
:class:`AppLedger`.

The AppLedger opens a Fabric gateway on first use and keeps it for the app's life (a gateway
per organisation asked for, at most two); :func:`close` closes them at shutdown (the app's
lifespan). A call through one of its contracts that finds the ledger unreachable
(``LedgerUnavailableError``) drops that gateway, so the next request connects afresh rather than
waiting out gRPC's reconnect backoff; the error itself reaches the caller, which the API answers
with 503 like any unavailable service. When no gateway can be opened at all (the identities'
files are missing, say), :class:`LedgerUnreachableError` is raised: 503 too.

Which organisation's peer answers:

- :data:`AUDIT_ORG` (Org2) for auditors and the public proof endpoints: a check of the hub's
  anchors does not ask the hub's own peer (the proof endpoints fall back to Org1's if Org2's
  gateway cannot be opened, the auditor does not);
- :data:`HUB_ORG` (Org1) for the hub's own transactions (commerce's payment decisions, whose
  creator MSP the ledger records).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from tracehub.config import FabricSettings
from tracehub.ledger import (
    Commit,
    Contract,
    Gateway,
    LedgerError,
    LedgerUnavailableError,
    SubmitResult,
)
from tracehub.ledger.local import connect_org
from tracehub.ledger.proposal import Arg

__all__ = [
    "AUDIT_ORG",
    "HUB_ORG",
    "AppLedger",
    "Ledger",
    "LedgerUnreachableError",
    "app_ledger",
    "close",
]

#: The hub's organisation: it anchors batches and records its own decisions.
HUB_ORG = 1
#: The other organisation: auditors and the public read the ledger through its peer.
AUDIT_ORG = 2


class LedgerUnreachableError(LedgerUnavailableError):
    """No gateway to the ledger could be opened (the message says why, per organisation): the
    kernel's LedgerUnavailableError, raised before any call could be made."""


class _Watched(Contract):
    """A contract of the app's gateway that reports an unreachable ledger to its AppLedger."""

    def __init__(self, contract: Contract, lost: Callable[[], None]) -> None:
        super().__init__(
            contract._client, contract.channel_id, contract.chaincode_name, contract.contract_name
        )
        self._lost = lost

    @contextmanager
    def _watch(self) -> Iterator[None]:
        try:
            yield
        except LedgerUnavailableError:
            self._lost()
            raise

    def evaluate(self, function: str, *args: Arg, **options: Any) -> bytes:
        with self._watch():
            return super().evaluate(function, *args, **options)

    def submit_async(self, function: str, *args: Arg, **options: Any) -> Commit:
        with self._watch():
            return super().submit_async(function, *args, **options)

    def submit(self, function: str, *args: Arg, **options: Any) -> SubmitResult:
        with self._watch():  # the commit status is awaited after submit_async
            return super().submit(function, *args, **options)


class AppLedger:
    """The app's gateways, one per organisation, opened on first use (thread-safe: the routes
    call the ledger from worker threads)."""

    def __init__(
        self,
        fabric: FabricSettings,
        connect: Callable[[FabricSettings, int], Gateway] = connect_org,
    ) -> None:
        self._fabric = fabric
        self._connect = connect
        self._gateways: dict[int, Gateway] = {}
        self._lock = threading.Lock()

    def contract(self, *orgs: int) -> Contract:
        """The chaincode through the first of ``orgs`` whose gateway is open or can be opened."""
        errors: list[str] = []
        with self._lock:
            for org in orgs:
                gateway = self._gateways.get(org)
                if gateway is None:
                    try:
                        gateway = self._gateways[org] = self._connect(self._fabric, org)
                    except (LedgerError, OSError) as exc:
                        errors.append(f"org{org}: {exc}")
                        continue
                network = gateway.get_network(self._fabric.channel)
                contract = network.get_contract(self._fabric.chaincode)
                return _Watched(contract, partial(self._drop, org, gateway))
        raise LedgerUnreachableError(f"ledger unavailable: {errors}")

    def _drop(self, org: int, gateway: Gateway) -> None:
        """Forget ``gateway`` (unless it was replaced meanwhile) and close it."""
        with self._lock:
            if self._gateways.get(org) is gateway:
                del self._gateways[org]
        gateway.close()

    def close(self) -> None:
        with self._lock:
            gateways = list(self._gateways.values())
            self._gateways.clear()
        for gateway in gateways:
            gateway.close()


_made = threading.Lock()


def app_ledger(request: Request) -> AppLedger:
    """The app's AppLedger, made on first use (the dependency behind :data:`Ledger`)."""
    state = request.app.state
    with _made:
        ledger: AppLedger | None = getattr(state, "ledger", None)
        if ledger is None:
            ledger = state.ledger = AppLedger(state.config.stack.fabric)
        return ledger


Ledger = Annotated[AppLedger, Depends(app_ledger)]


def close(app: FastAPI) -> None:
    """Close the app's gateways, if any were opened (called at app shutdown)."""
    ledger: AppLedger | None = getattr(app.state, "ledger", None)
    if ledger is not None:
        ledger.close()
