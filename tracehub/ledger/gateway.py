"""Connection to a Fabric Gateway peer: one gRPC channel shared by all calls."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc
from fabric_protos.gateway import gateway_pb2_grpc as _gateway_pb2_grpc

from .errors import LedgerError, LedgerUnavailableError, from_rpc_error
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
        self, channel: Any, identity: Identity, signer: Signer, timeouts: Timeouts
    ) -> None:
        self.identity = identity
        self.signer = signer
        self.timeouts = timeouts
        self.creator = identity.serialize()
        self._stub = gateway_pb2_grpc.GatewayStub(channel)
        self._closed = threading.Event()

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
        method: Callable[..., Any] = {
            "evaluate": self._stub.Evaluate,
            "endorse": self._stub.Endorse,
            "submit": self._stub.Submit,
            "commit_status": self._stub.CommitStatus,
        }[operation]
        deadline = float(getattr(self.timeouts, operation) if timeout is None else timeout)
        try:
            return method(request, timeout=deadline)
        except grpc.RpcError as exc:
            raise from_rpc_error(
                exc,
                operation=operation,
                tx_id=tx_id,
                transaction_name=transaction_name,
                timeout=deadline,
            ) from exc


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
    ) -> None:
        """Wrap an existing ``grpc.Channel`` (closed with the gateway if ``close_channel``)."""
        if not signer.matches(identity):
            raise ValueError(f"signer key does not match the certificate of {identity.msp_id}")
        self._channel = channel
        self._close_channel = close_channel
        self._client = GatewayClient(channel, identity, signer, timeouts or Timeouts())
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def connect(
        cls,
        endpoint: str,
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
    ) -> Gateway:
        """Open a gRPC channel to ``endpoint`` (``host:port``).

        TLS is used when ``tls_root_cert`` (PEM) is given; ``server_name_override`` sets
        the name checked against the peer certificate (``grpc.ssl_target_name_override``).
        ``tls_client_cert``/``tls_client_key`` enable mutual TLS. With ``connect_timeout``
        the call waits until the channel is ready, else the connection is lazy.
        """
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
        try:
            return cls(channel, identity=identity, signer=signer, timeouts=timeouts)
        except Exception:
            channel.close()
            raise

    @property
    def identity(self) -> Identity:
        """Client identity used for every proposal."""
        return self._client.identity

    @property
    def timeouts(self) -> Timeouts:
        """Default per-call deadlines."""
        return self._client.timeouts

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
            self._channel.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
