"""TraceHub's chaincode: dispatches each invocation by function name.

Functions live in one module per concept (records, devices, anchors); each takes the stub and
its string arguments and returns the response payload, or raises ChaincodeError to refuse.
"""

from __future__ import annotations

from typing import Any

from fabric_chaincode_python.fabric_shim import response
from fabric_chaincode_python.fabric_shim.interfaces import Chaincode, ChaincodeStubInterface

from chaincode import anchors, devices, records
from chaincode.base import ChaincodeError, Function

FUNCTIONS: dict[str, Function] = {**records.FUNCTIONS, **devices.FUNCTIONS, **anchors.FUNCTIONS}


class TraceHubChaincode(Chaincode):  # type: ignore[misc]
    """Dispatches each invocation to the function it names."""

    @staticmethod
    async def init(stub: ChaincodeStubInterface) -> Any:
        return response.success(b"")

    @staticmethod
    async def invoke(stub: ChaincodeStubInterface) -> Any:
        function_name, args = stub.get_function_and_parameters()
        function = FUNCTIONS.get(function_name)
        if function is None:
            known = ", ".join(sorted(FUNCTIONS))
            return response.error(f"unknown function {function_name!r}; known: {known}")
        try:
            return response.success(await function(stub, list(args)))
        except ChaincodeError as exc:
            return response.error(str(exc))
