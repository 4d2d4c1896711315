"""Connection to Fabric Gateway peers: one gRPC channel per peer, shared by all calls.

With several peers (of one organisation) a call that one peer cannot serve goes to the next,
as :class:`~tracehub.ledger.failover.Failover` says; the client stays with the peer that
answered.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc
from fabric_protos.gateway import gateway_pb2_grpc as _gateway_pb2_grpc

from .errors import LedgerError, LedgerUnavailableError, from_rpc_error
from .failover import Failover, retriable
from .identity import Identity, Signer
from .network import Network

gateway_pb2_grpc: Any = _gateway_pb2_grpc


@dataclass(frozen=True)
class Timeouts:
    """Per-call gRPC deadlines in seconds."""

    evaluate: float = 5.0
    endorse: float = 15.0
    submit: float = 5.0
    commit_status: float = 60.0

    def __post_init__(self) -> None:
        for name in ("evaluate", "endorse", "submit", "commit_status"):
            if getattr(self, name) <= 0:
                raise ValueError(f"timeout {name} must be positive")


class GatewayClient:
    """Signing identity + Gateway gRPC stub; maps gRPC failures to ledger errors.

    Internal: used by :class:`~tracehub.ledger.contract.Proposal` and friends. Safe to
    share between threads (gRPC channels are thread-safe, signing is stateless).
    """

    def __init__(
        self,
        channels: Sequence[Any],
        identity: Identity,
        signer: Signer,
        timeouts: Timeouts,
        failover: Failover | None = None,
    ) -> None:
        if not channels:
            raise ValueError("a gateway needs at least one channel")
        self.identity = identity
        self.signer = signer
        self.timeouts = timeouts
        self.failover = failover
        self.creator = identity.serialize()
        self._stubs = [gateway_pb2_grpc.GatewayStub(channel) for channel in channels]
        self._current = 0  # the peer that answered last; calls go there first
        self._closed = threading.Event()

    @property
    def current(self) -> int:
        """Index of the peer the next call goes to first."""
        return self._current

    def sign(self, message: bytes) -> bytes:
        """Signature over the SHA-256 digest of ``message``."""
        return self.signer.sign(hashlib.sha256(message).digest())

    def mark_closed(self) -> None:
        """Reject further calls (the channel is being closed)."""
        self._closed.set()

    def call(
        self,
        operation: str,
        request: Any,
        *,
        timeout: float | None = None,
        tx_id: str | None = None,
        transaction_name: str | None = None,
    ) -> Any:
        """Invoke ``Evaluate``/``Endorse``/``Submit``/``CommitStatus`` with a deadline."""
        if self._closed.is_set():
            raise LedgerError(
                "gateway connection is closed",
                tx_id=tx_id,
                operation=operation,
                transaction_name=transaction_name,
            )
        deadline = float(getattr(self.timeouts, operation) if timeout is None else timeout)
        tried = 0
        give_up_at: float | None = None
        while True:
            index = self._current
            stub = self._stubs[index]
            method: Callable[..., Any] = {
                "evaluate": stub.Evaluate,
                "endorse": stub.Endorse,
                "submit": stub.Submit,
                "commit_status": stub.CommitStatus,
            }[operation]
            try:
                return method(request, timeout=deadline)
            except grpc.RpcError as exc:
                error = from_rpc_error(
                    exc,
                    operation=operation,
                    tx_id=tx_id,
                    transaction_name=transaction_name,
                    timeout=deadline,
                )
                failover = self.failover
                if failover is None or not retriable(
                    error.grpc_code, operation, error.grpc_message
                ):
                    raise error from exc
                give_up_at = give_up_at or time.monotonic() + failover.retry_for
            tried += 1
            # Next peer; a concurrent call that already moved on is not undone.
            if self._current == index:
                self._current = (index + 1) % len(self._stubs)
            if tried % len(self._stubs) == 0:  # a whole round failed: wait, then again
                if time.monotonic() + failover.backoff > give_up_at:
                    raise error
                time.sleep(failover.backoff)


class Gateway:
    """Entry point: a connection to a Gateway peer on behalf of one client identity.

    Use :meth:`connect`, then :meth:`get_network`. Closing the gateway closes its gRPC
    channel; it is also a context manager.
    """

    def __init__(
        self,
        channel: Any,
        *,
        identity: Identity,
        signer: Signer,
        timeouts: Timeouts | None = None,
        close_channel: bool = True,
        fallback_channels: Sequence[Any] = (),
        failover: Failover | None = None,
    ) -> None:
        """Wrap an existing ``grpc.Channel`` (closed with the gateway if ``close_channel``);
        ``fallback_channels`` lead to other peers of the same org, tried as ``failover`` says."""
        if not signer.matches(identity):
            raise ValueError(f"signer key does not match the certificate of {identity.msp_id}")
        self._channels = [channel, *fallback_channels]
        self._close_channel = close_channel
        self._client = GatewayClient(
            self._channels, identity, signer, timeouts or Timeouts(), failover
        )
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def connect(
        cls,
        endpoint: str | Sequence[str],
        *,
        identity: Identity,
        signer: Signer,
        tls_root_cert: bytes | None = None,
        server_name_override: str | None = None,
        tls_client_cert: bytes | None = None,
        tls_client_key: bytes | None = None,
        timeouts: Timeouts | None = None,
        connect_timeout: float | None = None,
        options: Sequence[tuple[str, Any]] = (),
        failover: Failover | None = None,
    ) -> Gateway:
        """Open a gRPC channel to ``endpoint`` (``host:port``), or to each of several.

        TLS is used when ``tls_root_cert`` (PEM) is given; ``server_name_override`` sets
        the name checked against the peer certificate (``grpc.ssl_target_name_override``).
        ``tls_client_cert``/``tls_client_key`` enable mutual TLS. With ``connect_timeout``
        the call waits until a channel is ready, else the connection is lazy. Several
        endpoints are peers of one organisation, tried in order as ``failover`` says.
        """
        endpoints = [endpoint] if isinstance(endpoint, str) else list(endpoint)
        channels = [
            cls._open(
                e,
                tls_root_cert=tls_root_cert,
                server_name_override=server_name_override,
                tls_client_cert=tls_client_cert,
                tls_client_key=tls_client_key,
                connect_timeout=connect_timeout if len(endpoints) == 1 else None,
                options=options,
            )
            for e in endpoints
        ]
        if connect_timeout is not None and len(channels) > 1:
            cls._wait_for_any(channels, endpoints, connect_timeout)
        try:
            return cls(
                channels[0],
                identity=identity,
                signer=signer,
                timeouts=timeouts,
                fallback_channels=channels[1:],
                failover=failover,
            )
        except Exception:
            for channel in channels:
                channel.close()
            raise

    @staticmethod
    def _wait_for_any(channels: list[Any], endpoints: list[str], timeout: float) -> None:
        """Return once one of ``channels`` is ready; close them all if none is in time."""
        futures = [grpc.channel_ready_future(channel) for channel in channels]
        give_up_at = time.monotonic() + timeout
        try:
            while time.monotonic() < give_up_at:
                if any(future.done() for future in futures):
                    return
                time.sleep(0.05)
        finally:
            for future in futures:
                future.cancel()
        for channel in channels:
            channel.close()
        raise LedgerUnavailableError(
            f"could not connect to any gateway of {endpoints} within {timeout:g} s",
            grpc_code=grpc.StatusCode.UNAVAILABLE,
        )

    @staticmethod
    def _open(
        endpoint: str,
        *,
        tls_root_cert: bytes | None,
        server_name_override: str | None,
        tls_client_cert: bytes | None,
        tls_client_key: bytes | None,
        connect_timeout: float | None,
        options: Sequence[tuple[str, Any]],
    ) -> Any:
        """One gRPC channel to ``endpoint``, ready within ``connect_timeout`` if given."""
        channel_options = list(options)
        if server_name_override:
            channel_options.append(("grpc.ssl_target_name_override", server_name_override))
        if tls_root_cert is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=tls_root_cert,
                private_key=tls_client_key,
                certificate_chain=tls_client_cert,
            )
            channel = grpc.secure_channel(endpoint, credentials, options=channel_options)
        else:
            channel = grpc.insecure_channel(endpoint, options=channel_options)

        if connect_timeout is not None:
            try:
                grpc.channel_ready_future(channel).result(timeout=connect_timeout)
            except grpc.FutureTimeoutError as exc:
                channel.close()
                raise LedgerUnavailableError(
                    f"could not connect to gateway {endpoint} within {connect_timeout:g} s",
                    grpc_code=grpc.StatusCode.UNAVAILABLE,
                ) from exc
        return channel

    @property
    def identity(self) -> Identity:
        """Client identity used for every proposal."""
        return self._client.identity

    @property
    def timeouts(self) -> Timeouts:
        """Default per-call deadlines."""
        return self._client.timeouts

    @property
    def failover(self) -> Failover | None:
        """How calls fail over between the gateway's peers (None: one peer, tried once)."""
        return self._client.failover

    @property
    def current_peer(self) -> int:
        """Index (in the order given to :meth:`connect`) of the peer calls go to first now."""
        return self._client.current

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def get_network(self, channel_name: str) -> Network:
        """The network (Fabric channel) named ``channel_name``."""
        if not channel_name:
            raise ValueError("channel name must not be empty")
        return Network(self._client, channel_name)

    def close(self) -> None:
        """Close the gRPC channel; further calls raise :class:`LedgerError`. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._client.mark_closed()
        if self._close_channel:
            for channel in self._channels:
                channel.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
