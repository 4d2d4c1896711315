"""The chaincode-as-a-service gRPC server, around fabric-chaincode-python's message handler.

fabric-chaincode-python 2.5.4 handles each transaction in its own asyncio task and lets every
task write to the peer's stream directly. grpc.aio allows one write in flight per stream, so two
concurrent transactions fail with GRPC_CALL_ERROR_TOO_MANY_OPERATIONS and the stream is left
broken (seen in our concurrent-submit test; docs/decisions/0003). We keep the library's handler
and state machine, and give it a stream context whose writes are serialised by a lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable
from typing import Any

import grpc
from fabric_chaincode_python.fabric_shim.handler import Handler
from fabric_chaincode_python.fabric_shim.interfaces import Chaincode
from fabric_protos.peer import chaincode_shim_pb2_grpc as _shim_grpc

log = logging.getLogger(__name__)
# The generated gRPC module has no annotations.
shim_grpc: Any = _shim_grpc


class _SerialisedWrites:
    """A stream context whose `write` lets one message through at a time."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self._lock = asyncio.Lock()

    async def write(self, message: Any) -> None:
        async with self._lock:
            await self._context.write(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class ChaincodeService(shim_grpc.ChaincodeServicer):  # type: ignore[misc]
    """The peer connects here (chaincode as a service) and chats over one stream per peer."""

    def __init__(self, package_id: str, chaincode: Chaincode) -> None:
        self._package_id = package_id
        self._chaincode = chaincode

    async def Connect(
        self, request_iterator: AsyncIterable[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        handler = Handler(self._package_id, self._chaincode)
        try:
            await handler.chat_with_peer(request_iterator, _SerialisedWrites(context))
        except asyncio.CancelledError:
            log.info("peer stream closed")


async def serve(
    chaincode: Chaincode, package_id: str, address: str, key: bytes | None, cert: bytes | None
) -> None:
    """Serve until cancelled; TLS when key and certificate are given."""
    server = grpc.aio.server()
    shim_grpc.add_ChaincodeServicer_to_server(ChaincodeService(package_id, chaincode), server)
    if key and cert:
        server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
    else:
        server.add_insecure_port(address)
    await server.start()
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(grace=1)
