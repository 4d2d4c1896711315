"""Unit tests for tracehub.ledger (no network: fake gRPC channel, hand-built protobufs)."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)

from tracehub.ledger import (
    CommitError,
    CommitStatusError,
    EndorseError,
    EvaluateError,
    Gateway,
    Identity,
    LedgerError,
    LedgerTimeoutError,
    LedgerUnavailableError,
    MVCCConflictError,
    Signer,
    SubmitError,
    Timeouts,
    load_msp_identity,
)
from tracehub.ledger.errors import commit_error, decode_status, from_rpc_error
from tracehub.ledger.identity import curve_order, to_low_s
from tracehub.ledger.proposal import build_proposal, parse_prepared_transaction

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
MSP_ID = "Org1MSP"
CHANNEL = "trace"
CHAINCODE = "tracehub"


# ---------------------------------------------------------------- key material


def make_cert(key: ec.EllipticCurvePrivateKey, cn: str = "User1@org1.tracehub.local") -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def identity(key: ec.EllipticCurvePrivateKey) -> Identity:
    return Identity(MSP_ID, make_cert(key))


@pytest.fixture(scope="module")
def signer(key: ec.EllipticCurvePrivateKey) -> Signer:
    return Signer.from_pem(key_pem(key))


def verify(identity: Identity, signature: bytes, message: bytes) -> None:
    """Independent check: ECDSA/SHA-256 over ``message`` with the certificate's key."""
    public_key = x509.load_pem_x509_certificate(identity.certificate).public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    _, s = decode_dss_signature(signature)
    assert s <= P256_ORDER // 2, "signature is not low-S"


# ---------------------------------------------------------------- identity / signer


def test_identity_serializes_to_serialized_identity(identity: Identity) -> None:
    parsed = identities_pb2.SerializedIdentity.FromString(identity.serialize())
    assert parsed.mspid == MSP_ID
    assert parsed.id_bytes == identity.certificate


def test_identity_rejects_bad_certificate() -> None:
    with pytest.raises(ValueError, match="not valid PEM"):
        Identity(MSP_ID, b"not a cert")


def test_signatures_verify_and_are_always_low_s(identity: Identity, signer: Signer) -> None:
    assert curve_order("secp256r1") == P256_ORDER
    for i in range(300):
        message = f"message {i}".encode()
        signature = signer.sign(hashlib.sha256(message).digest())
        verify(identity, signature, message)


def test_to_low_s_normalises_high_s(identity: Identity, signer: Signer) -> None:
    message = b"malleable"
    low = signer.sign(hashlib.sha256(message).digest())
    r, s = decode_dss_signature(low)
    high = encode_dss_signature(r, P256_ORDER - s)
    verify_key = identity.x509.public_key()
    assert isinstance(verify_key, ec.EllipticCurvePublicKey)
    verify_key.verify(high, message, ec.ECDSA(hashes.SHA256()))  # both forms are valid ECDSA
    assert to_low_s(high, P256_ORDER) == low
    assert to_low_s(low, P256_ORDER) == low


def test_signer_rejects_non_digest(signer: Signer) -> None:
    with pytest.raises(ValueError, match="32-byte"):
        signer.sign(b"too short")


def test_load_msp_identity_picks_matching_key(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    msp = tmp_path / "User1@org1.tracehub.local" / "msp"
    (msp / "signcerts").mkdir(parents=True)
    (msp / "keystore").mkdir()
    (msp / "signcerts" / "User1@org1.tracehub.local-cert.pem").write_bytes(make_cert(key))
    decoy = ec.generate_private_key(ec.SECP256R1())
    (msp / "keystore" / "aaaa_sk").write_bytes(key_pem(decoy))
    (msp / "keystore" / "priv_sk").write_bytes(key_pem(key))

    for path in (msp, msp.parent):  # the msp dir itself or its parent
        identity, signer = load_msp_identity(path, MSP_ID)
        assert identity.msp_id == MSP_ID
        assert signer.matches(identity)
        verify(identity, signer.sign(hashlib.sha256(b"x").digest()), b"x")


def test_load_msp_identity_without_matching_key(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    (tmp_path / "signcerts").mkdir()
    (tmp_path / "keystore").mkdir()
    (tmp_path / "signcerts" / "cert.pem").write_bytes(make_cert(key))
    (tmp_path / "keystore" / "key").write_bytes(key_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(FileNotFoundError, match="matches"):
        load_msp_identity(tmp_path, MSP_ID)


# ---------------------------------------------------------------- proposal building


def parse_proposal(proposal_bytes: bytes) -> dict[str, Any]:
    proposal = proposal_pb2.Proposal.FromString(proposal_bytes)
    header = common_pb2.Header.FromString(proposal.header)
    channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
    signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
    extension = proposal_pb2.ChaincodeHeaderExtension.FromString(channel_header.extension)
    payload = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
    invocation = chaincode_pb2.ChaincodeInvocationSpec.FromString(payload.input)
    return {
        "channel_header": channel_header,
        "signature_header": signature_header,
        "extension": extension,
        "payload": payload,
        "spec": invocation.chaincode_spec,
    }


def test_tx_id_is_sha256_of_nonce_and_creator(identity: Identity) -> None:
    creator = identity.serialize()
    nonce = bytes(range(24))
    built = build_proposal(
        creator=creator,
        channel_id=CHANNEL,
        chaincode_name=CHAINCODE,
        transaction_name="PutRecord",
        nonce=nonce,
    )
    expected = hashlib.sha256(nonce + creator).hexdigest()
    assert built.tx_id == expected
    parsed = parse_proposal(built.proposal_bytes)
    assert parsed["channel_header"].tx_id == expected
    assert parsed["signature_header"].nonce == nonce
    assert parsed["signature_header"].creator == creator


def test_random_nonce_gives_distinct_tx_ids(identity: Identity) -> None:
    creator = identity.serialize()
    ids = set()
    for _ in range(50):
        built = build_proposal(
            creator=creator, channel_id=CHANNEL, chaincode_name=CHAINCODE, transaction_name="F"
        )
        header = parse_proposal(built.proposal_bytes)["signature_header"]
        assert len(header.nonce) == 24
        assert built.tx_id == hashlib.sha256(header.nonce + creator).hexdigest()
        ids.add(built.tx_id)
    assert len(ids) == 50


def test_proposal_fields_parse_back(identity: Identity) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    built = build_proposal(
        creator=identity.serialize(),
        channel_id=CHANNEL,
        chaincode_name=CHAINCODE,
        transaction_name="PutRecord",
        args=["id1", b"\x00\xffraw"],
        transient={"secret": "s3", "blob": b"\x01"},
    )
    parsed = parse_proposal(built.proposal_bytes)
    channel_header = parsed["channel_header"]
    assert channel_header.type == common_pb2.HeaderType.Value("ENDORSER_TRANSACTION")
    assert channel_header.channel_id == CHANNEL
    assert channel_header.epoch == 0
    stamp = channel_header.timestamp.ToDatetime(tzinfo=dt.UTC)
    assert before <= stamp <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    assert parsed["extension"].chaincode_id.name == CHAINCODE

    creator = identities_pb2.SerializedIdentity.FromString(parsed["signature_header"].creator)
    assert creator.mspid == MSP_ID
    assert creator.id_bytes == identity.certificate

    spec = parsed["spec"]
    assert spec.type == chaincode_pb2.ChaincodeSpec.Type.Value("UNDEFINED")
    assert spec.chaincode_id.name == CHAINCODE
    assert list(spec.input.args) == [b"PutRecord", b"id1", b"\x00\xffraw"]
    assert dict(parsed["payload"].TransientMap) == {"secret": b"s3", "blob": b"\x01"}


def test_rejects_non_str_bytes_args(identity: Identity) -> None:
    with pytest.raises(TypeError):
        build_proposal(
            creator=identity.serialize(),
            channel_id=CHANNEL,
            chaincode_name=CHAINCODE,
            transaction_name="F",
            args=[42],  # type: ignore[list-item]
        )


# ---------------------------------------------------------------- prepared transaction


def make_prepared_envelope(
    tx_id: str,
    payload: bytes,
    *,
    status: int = 200,
    message: str = "",
    channel: str = CHANNEL,
) -> Any:
    chaincode_action = proposal_pb2.ChaincodeAction(
        response=proposal_response_pb2.Response(status=status, message=message, payload=payload),
        chaincode_id=chaincode_pb2.ChaincodeID(name=CHAINCODE),
    )
    response_payload = proposal_response_pb2.ProposalResponsePayload(
        proposal_hash=b"h" * 32, extension=chaincode_action.SerializeToString()
    )
    action_payload = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=b"",
        action=transaction_pb2.ChaincodeEndorsedAction(
            proposal_response_payload=response_payload.SerializeToString(),
            endorsements=[proposal_response_pb2.Endorsement(endorser=b"e", signature=b"s")],
        ),
    )
    transaction = transaction_pb2.Transaction(
        actions=[transaction_pb2.TransactionAction(payload=action_payload.SerializeToString())]
    )
    channel_header = common_pb2.ChannelHeader(type=3, channel_id=channel, tx_id=tx_id)
    envelope_payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=channel_header.SerializeToString()),
        data=transaction.SerializeToString(),
    )
    return common_pb2.Envelope(payload=envelope_payload.SerializeToString())


def test_result_extracted_from_prepared_transaction() -> None:
    envelope = make_prepared_envelope("abc", b'{"id":"id1"}', message="ok")
    info = parse_prepared_transaction(envelope)
    assert info.payload == b'{"id":"id1"}'
    assert info.status == 200
    assert info.message == "ok"
    assert info.channel_id == CHANNEL
    assert info.tx_id == "abc"


def test_malformed_prepared_transaction() -> None:
    with pytest.raises(ValueError, match="malformed"):
        parse_prepared_transaction(common_pb2.Envelope(payload=b"\xff\xff\xff"))
    empty = common_pb2.Payload(data=transaction_pb2.Transaction().SerializeToString())
    with pytest.raises(ValueError, match="no transaction actions"):
        parse_prepared_transaction(common_pb2.Envelope(payload=empty.SerializeToString()))


# ---------------------------------------------------------------- error mapping


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def encode_status(code: int, message: str, details: list[tuple[str, bytes]]) -> bytes:
    """google.rpc.Status wire format, encoded by hand (independent of the client)."""
    out = _varint(1 << 3) + _varint(code) + _field(2, message.encode())
    for type_url, value in details:
        out += _field(3, _field(1, type_url.encode()) + _field(2, value))
    return out


def error_detail(address: str, msp_id: str, message: str) -> tuple[str, bytes]:
    detail = gateway_pb2.ErrorDetail(address=address, msp_id=msp_id, message=message)
    return "type.googleapis.com/gateway.ErrorDetail", detail.SerializeToString()


class FakeRpcError(grpc.RpcError):
    def __init__(
        self, code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, Any], ...] = ()
    ) -> None:
        super().__init__(details)
        self._code = code
        self._details = details
        self._trailing = trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:
        return self._trailing


def gateway_error(
    code: grpc.StatusCode, message: str, details: list[tuple[str, bytes]]
) -> FakeRpcError:
    status = encode_status(code.value[0], message, details)
    return FakeRpcError(code, message, (("grpc-status-details-bin", status),))


ENDORSE_FAILURE = "failed to endorse transaction, see attached details for more info"


def test_decode_status_reads_gateway_details() -> None:
    data = encode_status(
        10,
        ENDORSE_FAILURE,
        [
            ("type.googleapis.com/google.rpc.DebugInfo", b"\x0a\x01x"),  # other types skipped
            error_detail("peer0.org1.tracehub.local:7051", MSP_ID, "chaincode response 500, x"),
        ],
    )
    code, message, details = decode_status(data)
    assert (code, message) == (10, ENDORSE_FAILURE)
    assert [(d.address, d.msp_id, d.message) for d in details] == [
        ("peer0.org1.tracehub.local:7051", MSP_ID, "chaincode response 500, x")
    ]


def test_endorse_error_names_peer_and_chaincode_message() -> None:
    error = gateway_error(
        grpc.StatusCode.ABORTED,
        ENDORSE_FAILURE,
        [
            error_detail(
                "peer0.org1.tracehub.local:7051",
                MSP_ID,
                "chaincode response 500, record id1 already exists",
            )
        ],
    )
    mapped = from_rpc_error(
        error, operation="endorse", tx_id="tx123", transaction_name="PutRecord", timeout=15
    )
    assert type(mapped) is EndorseError
    text = str(mapped)
    assert text.startswith(
        "endorsement of PutRecord failed on peer0.org1.tracehub.local:7051 (Org1MSP): "
        "chaincode response 500, record id1 already exists"
    )
    assert "tx123" in text and "ABORTED" in text
    assert mapped.tx_id == "tx123"
    assert mapped.grpc_code == grpc.StatusCode.ABORTED
    assert mapped.grpc_message == ENDORSE_FAILURE
    assert mapped.details[0].msp_id == MSP_ID
    assert mapped.chaincode_status == 500
    assert mapped.chaincode_message == "record id1 already exists"


def test_error_with_several_details_lists_all() -> None:
    error = gateway_error(
        grpc.StatusCode.ABORTED,
        ENDORSE_FAILURE,
        [
            error_detail("peer0.org1:7051", "Org1MSP", "access denied"),
            error_detail("peer0.org2:9051", "Org2MSP", "chaincode response 500, boom"),
        ],
    )
    mapped = from_rpc_error(error, operation="endorse", transaction_name="PutRecord")
    assert "peer0.org1:7051 (Org1MSP): access denied; peer0.org2:9051 (Org2MSP)" in str(mapped)
    assert mapped.chaincode_message == "boom"


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("evaluate", EvaluateError),
        ("endorse", EndorseError),
        ("submit", SubmitError),
        ("commit_status", CommitStatusError),
    ],
)
def test_operation_specific_error_types(operation: str, expected: type[LedgerError]) -> None:
    error = FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "something broke")
    mapped = from_rpc_error(error, operation=operation, tx_id="t1", transaction_name="F")
    assert type(mapped) is expected
    assert isinstance(mapped, LedgerError)
    assert "something broke" in str(mapped)
    assert mapped.details == ()


def test_deadline_exceeded_maps_to_timeout() -> None:
    error = FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    mapped = from_rpc_error(
        error, operation="commit_status", tx_id="t1", transaction_name="PutRecord", timeout=60
    )
    assert isinstance(mapped, LedgerTimeoutError)
    assert mapped.timeout == 60
    assert "commit status request of PutRecord timed out after 60 s" in str(mapped)
    assert "may still be committed" in str(mapped)


def test_unavailable_maps_to_unavailable() -> None:
    error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
    mapped = from_rpc_error(error, operation="evaluate", transaction_name="GetRecord")
    assert isinstance(mapped, LedgerUnavailableError)
    assert "failed to connect to all addresses" in str(mapped)


def test_garbage_status_details_do_not_hide_error() -> None:
    error = FakeRpcError(
        grpc.StatusCode.ABORTED, "oops", (("grpc-status-details-bin", b"\xff\xff\xff"),)
    )
    mapped = from_rpc_error(error, operation="endorse", transaction_name="F")
    assert isinstance(mapped, EndorseError)
    assert mapped.details == ()
    assert "oops" in str(mapped)


@pytest.mark.parametrize(
    ("code", "name", "expected"),
    [
        (11, "MVCC_READ_CONFLICT", MVCCConflictError),
        (12, "PHANTOM_READ_CONFLICT", MVCCConflictError),
        (10, "ENDORSEMENT_POLICY_FAILURE", CommitError),
    ],
)
def test_commit_error_types(code: int, name: str, expected: type[CommitError]) -> None:
    error = commit_error(code=code, tx_id="t1", block_number=7, transaction_name="PutRecord")
    assert type(error) is expected
    assert error.code == code
    assert error.code_name == name
    assert error.block_number == 7
    assert name in str(error) and "t1" in str(error) and "block 7" in str(error)


# ---------------------------------------------------------------- flow with a fake channel


class FakeGatewayPeer:
    """In-memory stand-in for the Gateway service; checks every signature it receives."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.commit_code = 0
        self.evaluate_status = 200
        self.fail: dict[str, grpc.RpcError] = {}
        self.requests: list[tuple[str, Any, float | None]] = []
        self.lock = threading.Lock()

    def handle(self, method: str, data: bytes, timeout: float | None) -> Any:
        if method in self.fail:
            self._record(method, None, timeout)
            raise self.fail[method]
        handler: Callable[[bytes], Any] = getattr(self, method)
        return handler(data, timeout)

    def _record(self, method: str, request: Any, timeout: float | None) -> None:
        with self.lock:
            self.requests.append((method, request, timeout))

    def _proposal_args(self, signed: Any) -> list[bytes]:
        verify(self.identity, signed.signature, signed.proposal_bytes)
        return list(parse_proposal(signed.proposal_bytes)["spec"].input.args)

    def Evaluate(self, data: bytes, timeout: float | None) -> Any:
        request = gateway_pb2.EvaluateRequest.FromString(data)
        self._record("Evaluate", request, timeout)
        args = self._proposal_args(request.proposed_transaction)
        return gateway_pb2.EvaluateResponse(
            result=proposal_response_pb2.Response(
                status=self.evaluate_status,
                message="record missing" if self.evaluate_status >= 400 else "",
                payload=b"|".join(args),
            )
        )

    def Endorse(self, data: bytes, timeout: float | None) -> Any:
        request = gateway_pb2.EndorseRequest.FromString(data)
        self._record("Endorse", request, timeout)
        args = self._proposal_args(request.proposed_transaction)
        envelope = make_prepared_envelope(
            request.transaction_id, b"result:" + b"|".join(args), channel=request.channel_id
        )
        return gateway_pb2.EndorseResponse(prepared_transaction=envelope)

    def Submit(self, data: bytes, timeout: float | None) -> Any:
        request = gateway_pb2.SubmitRequest.FromString(data)
        self._record("Submit", request, timeout)
        envelope = request.prepared_transaction
        verify(self.identity, envelope.signature, envelope.payload)
        return gateway_pb2.SubmitResponse()

    def CommitStatus(self, data: bytes, timeout: float | None) -> Any:
        signed = gateway_pb2.SignedCommitStatusRequest.FromString(data)
        self._record("CommitStatus", signed, timeout)
        verify(self.identity, signed.signature, signed.request)
        request = gateway_pb2.CommitStatusRequest.FromString(signed.request)
        assert request.identity == self.identity.serialize()
        return gateway_pb2.CommitStatusResponse(result=self.commit_code, block_number=42)


class FakeChannel:
    """Just enough of grpc.Channel for the generated GatewayStub."""

    def __init__(self, peer: FakeGatewayPeer) -> None:
        self.peer = peer
        self.closed = False

    def unary_unary(
        self,
        path: str,
        request_serializer: Callable[[Any], bytes],
        response_deserializer: Callable[[bytes], Any],
        **_: Any,
    ) -> Callable[..., Any]:
        method = path.rsplit("/", 1)[-1]

        def invoke(request: Any, timeout: float | None = None, **__: Any) -> Any:
            response = self.peer.handle(method, request_serializer(request), timeout)
            return response_deserializer(response.SerializeToString())

        return invoke

    def unary_stream(self, *_: Any, **__: Any) -> Callable[..., Any]:
        return lambda *a, **k: iter(())

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def peer(identity: Identity) -> FakeGatewayPeer:
    return FakeGatewayPeer(identity)


@pytest.fixture
def gateway(peer: FakeGatewayPeer, identity: Identity, signer: Signer) -> Gateway:
    return Gateway(FakeChannel(peer), identity=identity, signer=signer)


def test_submit_flow(gateway: Gateway, peer: FakeGatewayPeer) -> None:
    contract = gateway.get_network(CHANNEL).get_contract(CHAINCODE)
    result = contract.submit("PutRecord", "id1", b"{}")
    assert result.status == "VALID"
    assert result.block_number == 42
    assert result.result == b"result:PutRecord|id1|{}"

    methods = [(m, t) for m, _, t in peer.requests]
    assert methods == [("Endorse", 15.0), ("Submit", 5.0), ("CommitStatus", 60.0)]
    endorse = peer.requests[0][1]
    assert endorse.transaction_id == result.tx_id
    assert endorse.channel_id == CHANNEL
    submit = peer.requests[1][1]
    assert (submit.transaction_id, submit.channel_id) == (result.tx_id, CHANNEL)
    status_request = gateway_pb2.CommitStatusRequest.FromString(peer.requests[2][1].request)
    assert (status_request.transaction_id, status_request.channel_id) == (result.tx_id, CHANNEL)


def test_step_by_step_flow(gateway: Gateway, peer: FakeGatewayPeer) -> None:
    contract = gateway.get_network(CHANNEL).get_contract(CHAINCODE, "records")
    proposal = contract.new_proposal(
        "PutRecord", args=["id1"], transient={"k": b"v"}, endorsing_orgs=["Org1MSP"]
    )
    assert len(proposal.tx_id) == 64
    transaction = proposal.endorse(timeout=3)
    assert transaction.tx_id == proposal.tx_id
    assert transaction.result == b"result:records:PutRecord|id1"
    commit = transaction.submit()
    status = commit.status()
    assert status.successful and status.code == 0 and status.code_name == "VALID"
    assert status.block_number == 42 and status.tx_id == proposal.tx_id
    endorse = peer.requests[0][1]
    assert list(endorse.endorsing_organizations) == ["Org1MSP"]
    assert peer.requests[0][2] == 3


def test_submit_mvcc_conflict_raises(gateway: Gateway, peer: FakeGatewayPeer) -> None:
    peer.commit_code = transaction_pb2.TxValidationCode.Value("MVCC_READ_CONFLICT")
    contract = gateway.get_network(CHANNEL).get_contract(CHAINCODE)
    with pytest.raises(MVCCConflictError) as info:
        contract.submit("PutRecord", "id1")
    assert info.value.code_name == "MVCC_READ_CONFLICT"
    assert info.value.block_number == 42
    assert "PutRecord" in str(info.value)


def test_endorse_failure_raises_endorse_error(gateway: Gateway, peer: FakeGatewayPeer) -> None:
    peer.fail["Endorse"] = gateway_error(
        grpc.StatusCode.ABORTED,
        ENDORSE_FAILURE,
        [error_detail("peer0.org1.tracehub.local:7051", MSP_ID, "chaincode response 500, dup")],
    )
    contract = gateway.get_network(CHANNEL).get_contract(CHAINCODE)
    with pytest.raises(EndorseError) as info:
        contract.submit("PutRecord", "id1")
    assert info.value.tx_id and len(info.value.tx_id) == 64
    assert info.value.chaincode_message == "dup"
    assert "endorsement of PutRecord failed on peer0.org1.tracehub.local:7051" in str(info.value)


def test_submit_timeout_uses_configured_deadline(
    peer: FakeGatewayPeer, identity: Identity, signer: Signer
) -> None:
    gateway = Gateway(
        FakeChannel(peer), identity=identity, signer=signer, timeouts=Timeouts(submit=2.5)
    )
    peer.fail["Submit"] = FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    contract = gateway.get_network(CHANNEL).get_contract(CHAINCODE)
    with pytest.raises(LedgerTimeoutError) as info:
        contract.submit("PutRecord", "id1")
    assert info.value.timeout == 2.5
    assert info.value.operation == "submit"
    assert peer.requests[-1][2] == 2.5


def test_evaluate(gateway: Gateway, peer: FakeGatewayPeer) -> None:
    contract = gateway.get_network(CHANNEL).get_contract(CHAINCODE)
    assert contract.evaluate("GetRecord", "id1") == b"GetRecord|id1"
    assert peer.requests[-1][0] == "Evaluate"
    assert peer.requests[-1][2] == 5.0

    peer.evaluate_status = 500
    with pytest.raises(EvaluateError) as info:
        contract.evaluate("GetRecord", "id2")
    assert info.value.chaincode_status == 500
    assert info.value.chaincode_message == "record missing"
    assert "evaluation of GetRecord failed: chaincode response 500, record missing" in str(
        info.value
    )


def test_concurrent_submits_from_threads(gateway: Gateway) -> None:
    contract = gateway.get_network(CHANNEL).get_contract(CHAINCODE)
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            for i in range(10):
                out = contract.submit("PutRecord", f"id-{n}-{i}")
                assert out.result == f"result:PutRecord|id-{n}-{i}".encode()
                with lock:
                    results.append(out.tx_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == len(set(results)) == 80


def test_close_closes_channel_and_rejects_calls(
    peer: FakeGatewayPeer, identity: Identity, signer: Signer
) -> None:
    channel = FakeChannel(peer)
    with Gateway(channel, identity=identity, signer=signer) as gateway:
        contract = gateway.get_network(CHANNEL).get_contract(CHAINCODE)
    assert channel.closed and gateway.closed
    with pytest.raises(LedgerError, match="closed"):
        contract.evaluate("GetRecord", "id1")
    gateway.close()  # idempotent


def test_gateway_rejects_mismatched_signer(peer: FakeGatewayPeer, identity: Identity) -> None:
    other = Signer(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError, match="does not match"):
        Gateway(FakeChannel(peer), identity=identity, signer=other)


def test_connect_builds_secure_channel(
    monkeypatch: pytest.MonkeyPatch, identity: Identity, signer: Signer
) -> None:
    captured: dict[str, Any] = {}

    def fake_secure_channel(target: str, credentials: Any, options: Any = None) -> FakeChannel:
        captured.update(target=target, credentials=credentials, options=options)
        return FakeChannel(FakeGatewayPeer(identity))

    monkeypatch.setattr(grpc, "secure_channel", fake_secure_channel)
    gateway = Gateway.connect(
        "127.0.0.1:17051",
        identity=identity,
        signer=signer,
        tls_root_cert=identity.certificate,
        server_name_override="peer0.org1.tracehub.local",
    )
    assert captured["target"] == "127.0.0.1:17051"
    assert ("grpc.ssl_target_name_override", "peer0.org1.tracehub.local") in captured["options"]
    assert isinstance(captured["credentials"], grpc.ChannelCredentials)
    gateway.close()


def test_invalid_signature_would_be_detected(identity: Identity, signer: Signer) -> None:
    signature = signer.sign(hashlib.sha256(b"a").digest())
    with pytest.raises(InvalidSignature):
        verify(identity, signature, b"b")
