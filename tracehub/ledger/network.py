"""A Fabric channel reached through the gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .contract import Contract

if TYPE_CHECKING:
    from .gateway import GatewayClient


class Network:
    """A Fabric channel; hands out :class:`Contract` objects for its chaincodes."""

    def __init__(self, client: GatewayClient, name: str) -> None:
        self._client = client
        self.name = name

    def get_contract(self, chaincode_name: str, contract_name: str | None = None) -> Contract:
        """Contract of chaincode ``chaincode_name``.

        With ``contract_name`` transaction names are sent as ``"contract_name:function"``,
        for chaincodes that hold several named contracts.
        """
        if not chaincode_name:
            raise ValueError("chaincode name must not be empty")
        return Contract(self._client, self.name, chaincode_name, contract_name)

    def __repr__(self) -> str:
        return f"Network({self.name!r})"
