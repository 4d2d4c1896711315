"""Exceptions raised by the ledger client, and mapping of gRPC failures onto them.

The Fabric Gateway reports failures as a gRPC status whose ``details`` carry one
``gateway.ErrorDetail{address, msp_id, message}`` per peer or orderer that failed. gRPC
transports that status in the ``grpc-status-details-bin`` trailing metadata entry as a
serialized ``google.rpc.Status``; :func:`parse_status_details` decodes it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import grpc
from fabric_protos.gateway import gateway_pb2 as _gateway_pb2
from fabric_protos.peer import transaction_pb2 as _transaction_pb2

from tracehub.errors import UnavailableError, UpstreamError

# The generated protobuf modules carry no type information.
gateway_pb2: Any = _gateway_pb2
transaction_pb2: Any = _transaction_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
_ERROR_DETAIL_TYPE = "gateway.ErrorDetail"
_CHAINCODE_RESPONSE = re.compile(r"chaincode response (\d+), (.*)", re.DOTALL)

#: Human wording of each gateway operation, used in messages.
OPERATIONS = {
    "evaluate": "evaluation",
    "endorse": "endorsement",
    "submit": "submission to the orderer",
    "commit_status": "commit status request",
}


@dataclass(frozen=True)
class ErrorDetail:
    """One failure reported by the gateway: which node failed, and why."""

    address: str
    msp_id: str
    message: str

    def __str__(self) -> str:
        where = self.address or "unknown node"
        if self.msp_id:
            where = f"{where} ({self.msp_id})"
        return f"{where}: {self.message}"


class LedgerError(UpstreamError):
    """Base class of every error raised by :mod:`tracehub.ledger`: the ledger refused or failed
    (an upstream error), or, for the two subclasses that are also UnavailableErrors, could not
    be reached in time."""

    def __init__(
        self,
        message: str,
        *,
        tx_id: str | None = None,
        operation: str | None = None,
        transaction_name: str | None = None,
        grpc_code: grpc.StatusCode | None = None,
        grpc_message: str | None = None,
        details: Sequence[ErrorDetail] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.tx_id = tx_id
        self.operation = operation
        self.transaction_name = transaction_name
        self.grpc_code = grpc_code
        self.grpc_message = grpc_message
        self.details: tuple[ErrorDetail, ...] = tuple(details)

    def __str__(self) -> str:
        return self.message

    @property
    def chaincode_status(self) -> int | None:
        """Status the chaincode returned, when a detail reports a chaincode response."""
        found = self._chaincode_response()
        return found[0] if found else None

    @property
    def chaincode_message(self) -> str | None:
        """Message the chaincode returned, e.g. ``"record id1 already exists"``."""
        found = self._chaincode_response()
        return found[1] if found else None

    def _chaincode_response(self) -> tuple[int, str] | None:
        for text in [d.message for d in self.details] + [self.grpc_message or ""]:
            match = _CHAINCODE_RESPONSE.search(text)
            if match:
                return int(match.group(1)), match.group(2)
        return None


class EndorseError(LedgerError):
    """The transaction proposal could not be endorsed (chaincode error, policy, ...)."""


class SubmitError(LedgerError):
    """The endorsed transaction could not be sent to the ordering service."""


class CommitStatusError(LedgerError):
    """The commit status of a submitted transaction could not be obtained."""


class EvaluateError(LedgerError):
    """A query (evaluate) failed, or the chaincode answered with status >= 400."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        response_message: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.status = status
        self.response_message = response_message

    @property
    def chaincode_status(self) -> int | None:
        """Status the chaincode returned, when known."""
        return self.status if self.status is not None else super().chaincode_status

    @property
    def chaincode_message(self) -> str | None:
        """Message the chaincode returned, when known."""
        if self.response_message is not None:
            return self.response_message
        return super().chaincode_message


class CommitError(LedgerError):
    """The transaction was committed to a block but marked invalid by the peers."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        block_number: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.code = code
        self.code_name = tx_validation_code_name(code)
        self.block_number = block_number


class MVCCConflictError(CommitError):
    """The transaction read a key (or range) that another transaction changed first.

    Retrying the whole transaction (a new proposal) normally succeeds.
    """


class LedgerTimeoutError(LedgerError, UnavailableError):
    """A gateway call exceeded its deadline (gRPC ``DEADLINE_EXCEEDED``)."""

    def __init__(self, message: str, *, timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.timeout = timeout


class LedgerUnavailableError(LedgerError, UnavailableError):
    """The gateway peer (or the nodes behind it) could not be reached (``UNAVAILABLE``)."""


_MVCC_CODES = frozenset({"MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT"})


def tx_validation_code_name(code: int) -> str:
    """Name of a ``protos.TxValidationCode`` value, e.g. 11 -> ``"MVCC_READ_CONFLICT"``."""
    try:
        return str(transaction_pb2.TxValidationCode.Name(code))
    except ValueError:
        return f"UNKNOWN_CODE_{code}"


def commit_error(
    *,
    code: int,
    tx_id: str,
    block_number: int | None = None,
    transaction_name: str | None = None,
) -> CommitError:
    """Build the :class:`CommitError` (or :class:`MVCCConflictError`) for an invalid commit."""
    name = tx_validation_code_name(code)
    what = f"transaction {transaction_name} " if transaction_name else "transaction "
    where = f" in block {block_number}" if block_number is not None else ""
    message = f"{what}{tx_id} was committed{where} but is invalid: {name} (code {code})"
    cls = MVCCConflictError if name in _MVCC_CODES else CommitError
    if cls is MVCCConflictError:
        message += "; another transaction changed the data it read, retry it"
    return cls(
        message,
        code=code,
        block_number=block_number,
        tx_id=tx_id,
        operation="commit_status",
        transaction_name=transaction_name,
    )


@cache
def _status_message_class() -> Any:
    """``google.rpc.Status`` message class.

    Uses ``google.rpc.status_pb2`` (googleapis-common-protos) when installed; otherwise
    declares the same three-field message in a private descriptor pool, so decoding works
    without adding a dependency.
    """
    try:
        return importlib.import_module("google.rpc.status_pb2").Status
    except ImportError:
        pass
    descriptor_pb2 = importlib.import_module("google.protobuf.descriptor_pb2")
    descriptor_pool = importlib.import_module("google.protobuf.descriptor_pool")
    message_factory = importlib.import_module("google.protobuf.message_factory")
    any_pb2 = importlib.import_module("google.protobuf.any_pb2")

    pool = descriptor_pool.DescriptorPool()
    any_file = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_file)
    pool.Add(any_file)

    field = descriptor_pb2.FieldDescriptorProto
    status_file = descriptor_pb2.FileDescriptorProto(
        name="tracehub/ledger/google_rpc_status.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=[any_file.name],
    )
    status = status_file.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    status.field.add(name="message", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    status.field.add(
        name="details",
        number=3,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_REPEATED,
        type_name=".google.protobuf.Any",
    )
    pool.Add(status_file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


def decode_status(data: bytes) -> tuple[int, str, list[ErrorDetail]]:
    """Decode a serialized ``google.rpc.Status`` into (code, message, gateway details).

    Details of other types than ``gateway.ErrorDetail`` are skipped.
    """
    status = _status_message_class().FromString(data)
    details: list[ErrorDetail] = []
    for item in status.details:
        if str(item.type_url).rsplit("/", 1)[-1] != _ERROR_DETAIL_TYPE:
            continue
        detail = gateway_pb2.ErrorDetail.FromString(item.value)
        details.append(ErrorDetail(str(detail.address), str(detail.msp_id), str(detail.message)))
    return int(status.code), str(status.message), details


def parse_status_details(metadata: Iterable[Any] | None) -> list[ErrorDetail]:
    """Gateway error details found in gRPC trailing metadata (empty if none or undecodable)."""
    for key, value in metadata or ():
        if key != STATUS_DETAILS_KEY:
            continue
        try:
            raw = value if isinstance(value, bytes) else str(value).encode("latin-1")
            return decode_status(raw)[2]
        except Exception:  # malformed details must not hide the original error
            return []
    return []


def _call_attr(error: grpc.RpcError, name: str) -> Any:
    method = getattr(error, name, None)
    return method() if callable(method) else None


def from_rpc_error(
    error: grpc.RpcError,
    *,
    operation: str,
    tx_id: str | None = None,
    transaction_name: str | None = None,
    timeout: float | None = None,
) -> LedgerError:
    """Translate a failed gateway call into the matching :class:`LedgerError`.

    ``operation`` is one of ``evaluate``, ``endorse``, ``submit``, ``commit_status``.
    """
    code = _call_attr(error, "code")
    grpc_message = str(_call_attr(error, "details") or "")
    details = parse_status_details(_call_attr(error, "trailing_metadata"))
    code_name = str(getattr(code, "name", code))
    action = OPERATIONS.get(operation, operation)
    subject = f"{action} of {transaction_name}" if transaction_name else action
    suffix = f" [gRPC {code_name}" + (f", tx {tx_id}]" if tx_id else "]")
    common: dict[str, Any] = {
        "tx_id": tx_id,
        "operation": operation,
        "transaction_name": transaction_name,
        "grpc_code": code,
        "grpc_message": grpc_message,
        "details": details,
    }

    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        limit = f" after {timeout:g} s" if timeout is not None else ""
        message = f"{subject} timed out{limit}"
        if operation in ("submit", "commit_status"):
            message += "; the transaction may still be committed"
        return LedgerTimeoutError(message + suffix, timeout=timeout, **common)

    reasons = "; ".join(str(d) for d in details) or grpc_message or "no reason given"
    if code == grpc.StatusCode.UNAVAILABLE:
        message = f"{subject} failed, gateway or peers unavailable: {reasons}"
        return LedgerUnavailableError(message + suffix, **common)

    # With details, name the failing node(s): "... failed on peer0...:7051 (Org1MSP): ..."
    message = f"{subject} failed on {reasons}" if details else f"{subject} failed: {reasons}"
    cls = cast(
        type[LedgerError],
        {
            "evaluate": EvaluateError,
            "endorse": EndorseError,
            "submit": SubmitError,
            "commit_status": CommitStatusError,
        }.get(operation, LedgerError),
    )
    return cls(message + suffix, **common)
