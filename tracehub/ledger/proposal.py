"""Protocol messages: building signed proposals and gateway requests, parsing results.

Pure functions over protobuf bytes, no I/O. The proposal layout follows the official
Fabric Gateway clients:

* ``tx_id = hex(sha256(nonce + creator))`` with a 24-byte random nonce, where
  ``creator`` is the serialized ``msp.SerializedIdentity``;
* ``Header{ChannelHeader{ENDORSER_TRANSACTION, timestamp, channel, tx_id, epoch 0,
  extension=ChaincodeHeaderExtension{chaincode_id.name}}, SignatureHeader{creator, nonce}}``;
* ``ChaincodeProposalPayload{input=ChaincodeInvocationSpec{ChaincodeSpec{type UNDEFINED,
  chaincode_id.name, input.args=[function, *args]}}, TransientMap}``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fabric_protos.common import common_pb2 as _common_pb2
from fabric_protos.gateway import gateway_pb2 as _gateway_pb2
from fabric_protos.peer import chaincode_pb2 as _chaincode_pb2
from fabric_protos.peer import proposal_pb2 as _proposal_pb2
from fabric_protos.peer import proposal_response_pb2 as _proposal_response_pb2
from fabric_protos.peer import transaction_pb2 as _transaction_pb2

# The generated protobuf modules carry no type information.
common_pb2: Any = _common_pb2
gateway_pb2: Any = _gateway_pb2
chaincode_pb2: Any = _chaincode_pb2
proposal_pb2: Any = _proposal_pb2
proposal_response_pb2: Any = _proposal_response_pb2
transaction_pb2: Any = _transaction_pb2

NONCE_LENGTH = 24
Arg = str | bytes


def sha256(data: bytes) -> bytes:
    """SHA-256 digest, the hash Fabric uses for transaction ids and signatures."""
    return hashlib.sha256(data).digest()


def new_nonce() -> bytes:
    """Fresh random nonce for a proposal."""
    return os.urandom(NONCE_LENGTH)


def compute_tx_id(nonce: bytes, creator: bytes) -> str:
    """Transaction id: lowercase hex SHA-256 of ``nonce + creator``."""
    return hashlib.sha256(nonce + creator).hexdigest()


def to_bytes(value: Arg) -> bytes:
    """Chaincode argument as bytes (``str`` is UTF-8 encoded)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"chaincode arguments must be str or bytes, not {type(value).__name__}")


@dataclass(frozen=True)
class BuiltProposal:
    """An unsigned proposal: its id, nonce and serialized ``protos.Proposal``."""

    tx_id: str
    nonce: bytes
    proposal_bytes: bytes


def build_proposal(
    *,
    creator: bytes,
    channel_id: str,
    chaincode_name: str,
    transaction_name: str,
    args: Sequence[Arg] = (),
    transient: Mapping[str, Arg] | None = None,
    nonce: bytes | None = None,
    timestamp: datetime | None = None,
) -> BuiltProposal:
    """Build a serialized chaincode proposal (see the module docstring for its layout)."""
    nonce = new_nonce() if nonce is None else nonce
    tx_id = compute_tx_id(nonce, creator)

    extension = proposal_pb2.ChaincodeHeaderExtension(
        chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode_name)
    )
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.HeaderType.Value("ENDORSER_TRANSACTION"),
        channel_id=channel_id,
        tx_id=tx_id,
        epoch=0,
        extension=extension.SerializeToString(),
    )
    if timestamp is None:
        channel_header.timestamp.GetCurrentTime()
    else:
        channel_header.timestamp.FromDatetime(timestamp)
    signature_header = common_pb2.SignatureHeader(creator=creator, nonce=nonce)
    header = common_pb2.Header(
        channel_header=channel_header.SerializeToString(),
        signature_header=signature_header.SerializeToString(),
    )

    invocation = chaincode_pb2.ChaincodeInvocationSpec(
        chaincode_spec=chaincode_pb2.ChaincodeSpec(
            # The official clients leave the type unset (UNDEFINED); peers ignore it.
            type=chaincode_pb2.ChaincodeSpec.Type.Value("UNDEFINED"),
            chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode_name),
            input=chaincode_pb2.ChaincodeInput(
                args=[to_bytes(transaction_name), *(to_bytes(a) for a in args)]
            ),
        )
    )
    payload = proposal_pb2.ChaincodeProposalPayload(
        input=invocation.SerializeToString(),
        TransientMap={k: to_bytes(v) for k, v in (transient or {}).items()},
    )
    proposal = proposal_pb2.Proposal(
        header=header.SerializeToString(), payload=payload.SerializeToString()
    )
    return BuiltProposal(tx_id, nonce, bytes(proposal.SerializeToString()))


def signed_proposal(proposal_bytes: bytes, signature: bytes) -> Any:
    """``protos.SignedProposal`` message."""
    return proposal_pb2.SignedProposal(proposal_bytes=proposal_bytes, signature=signature)


def endorse_request(
    tx_id: str, channel_id: str, proposal: Any, endorsing_orgs: Sequence[str] = ()
) -> Any:
    """``gateway.EndorseRequest`` for a signed proposal."""
    return gateway_pb2.EndorseRequest(
        transaction_id=tx_id,
        channel_id=channel_id,
        proposed_transaction=proposal,
        endorsing_organizations=list(endorsing_orgs),
    )


def evaluate_request(
    tx_id: str, channel_id: str, proposal: Any, target_orgs: Sequence[str] = ()
) -> Any:
    """``gateway.EvaluateRequest`` for a signed proposal."""
    return gateway_pb2.EvaluateRequest(
        transaction_id=tx_id,
        channel_id=channel_id,
        proposed_transaction=proposal,
        target_organizations=list(target_orgs),
    )


def submit_request(tx_id: str, channel_id: str, envelope: Any) -> Any:
    """``gateway.SubmitRequest`` for a signed transaction envelope."""
    return gateway_pb2.SubmitRequest(
        transaction_id=tx_id, channel_id=channel_id, prepared_transaction=envelope
    )


def commit_status_request_bytes(tx_id: str, channel_id: str, creator: bytes) -> bytes:
    """Serialized ``gateway.CommitStatusRequest`` (the part that gets signed)."""
    request = gateway_pb2.CommitStatusRequest(
        transaction_id=tx_id, channel_id=channel_id, identity=creator
    )
    return bytes(request.SerializeToString())


def signed_commit_status_request(request_bytes: bytes, signature: bytes) -> Any:
    """``gateway.SignedCommitStatusRequest`` message."""
    return gateway_pb2.SignedCommitStatusRequest(request=request_bytes, signature=signature)


@dataclass(frozen=True)
class TransactionResult:
    """What an endorsed (prepared) transaction says about its execution."""

    channel_id: str
    tx_id: str
    status: int
    message: str
    payload: bytes


def parse_prepared_transaction(envelope: Any) -> TransactionResult:
    """Extract channel, tx id and chaincode response from a prepared ``common.Envelope``.

    Path: ``Envelope.payload -> Payload.data -> Transaction.actions[i].payload ->
    ChaincodeActionPayload.action.proposal_response_payload -> ProposalResponsePayload
    .extension -> ChaincodeAction.response``. Raises ``ValueError`` if malformed.
    """
    try:
        payload = common_pb2.Payload.FromString(envelope.payload)
        channel_header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        transaction = transaction_pb2.Transaction.FromString(payload.data)
    except Exception as exc:
        raise ValueError(f"malformed prepared transaction: {exc}") from exc
    if not transaction.actions:
        raise ValueError("malformed prepared transaction: no transaction actions")

    errors: list[str] = []
    for action in transaction.actions:
        try:
            action_payload = transaction_pb2.ChaincodeActionPayload.FromString(action.payload)
            response_payload = proposal_response_pb2.ProposalResponsePayload.FromString(
                action_payload.action.proposal_response_payload
            )
            chaincode_action = proposal_pb2.ChaincodeAction.FromString(response_payload.extension)
        except Exception as exc:
            errors.append(str(exc))
            continue
        response = chaincode_action.response
        return TransactionResult(
            channel_id=str(channel_header.channel_id),
            tx_id=str(channel_header.tx_id),
            status=int(response.status),
            message=str(response.message),
            payload=bytes(response.payload),
        )
    raise ValueError(f"malformed prepared transaction: {'; '.join(errors)}")
