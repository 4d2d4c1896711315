"""The ledger client's failover between an org's gateway peers (tracehub.ledger.failover),
against in-memory Gateway peers: which failures move to the next peer, which do not, and the
re-sent envelope when a commit does not come."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.kernel.test_ledger_client import (
    MSP_ID,
    FakeChannel,
    FakeGatewayPeer,
    FakeRpcError,
    key_pem,
    make_cert,
)
from tests.support.processes import free_port
from tracehub.config import FabricSettings
from tracehub.ledger import (
    EndorseError,
    Failover,
    Gateway,
    Identity,
    LedgerTimeoutError,
    LedgerUnavailableError,
    Signer,
    Timeouts,
)
from tracehub.ledger.failover import retriable

FAST = Failover(retry_for=0.5, backoff=0.05, resubmit_after=0.2)
DOWN = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")


@pytest.fixture(scope="module")
def keys() -> tuple[Identity, Signer]:
    key = ec.generate_private_key(ec.SECP256R1())
    return Identity(MSP_ID, make_cert(key)), Signer.from_pem(key_pem(key))


def _peers(keys: tuple[Identity, Signer], count: int) -> list[FakeGatewayPeer]:
    return [FakeGatewayPeer(keys[0]) for _ in range(count)]


def _gateway(
    keys: tuple[Identity, Signer],
    peers: list[FakeGatewayPeer],
    failover: Failover | None = FAST,
    timeouts: Timeouts | None = None,
) -> Gateway:
    channels = [FakeChannel(p) for p in peers]
    return Gateway(
        channels[0],
        identity=keys[0],
        signer=keys[1],
        fallback_channels=channels[1:],
        failover=failover,
        timeouts=timeouts,
    )


def _calls(peer: FakeGatewayPeer) -> list[str]:
    return [method for method, _, _ in peer.requests]


def test_a_down_peer_sends_every_call_to_the_next(keys: tuple[Identity, Signer]) -> None:
    first, second = _peers(keys, 2)
    first.fail = dict.fromkeys(("Evaluate", "Endorse", "Submit", "CommitStatus"), DOWN)
    with _gateway(keys, [first, second]) as gateway:
        contract = gateway.get_network("trace").get_contract("tracehub")
        assert contract.submit("PutRecord", "id1").block_number == 42
        assert gateway.current_peer == 1
        # The client stays with the peer that answered: the next call does not try the first.
        assert contract.evaluate("GetRecord", "id1") == b"GetRecord|id1"
    assert _calls(first) == ["Endorse"]
    assert _calls(second) == ["Endorse", "Submit", "CommitStatus", "Evaluate"]


def test_without_failover_one_peer_is_tried_once(keys: tuple[Identity, Signer]) -> None:
    (peer,) = _peers(keys, 1)
    peer.fail = {"Endorse": DOWN}
    with _gateway(keys, [peer], failover=None) as gateway:
        contract = gateway.get_network("trace").get_contract("tracehub")
        with pytest.raises(LedgerUnavailableError):
            contract.submit("PutRecord", "id1")
    assert _calls(peer) == ["Endorse"]


def test_all_peers_down_gives_up_after_retry_for(keys: tuple[Identity, Signer]) -> None:
    peers = _peers(keys, 2)
    for peer in peers:
        peer.fail = {"Endorse": DOWN}
    with _gateway(keys, peers) as gateway:
        contract = gateway.get_network("trace").get_contract("tracehub")
        with pytest.raises(LedgerUnavailableError):
            contract.submit("PutRecord", "id1")
    # Rounds over both peers, 0.05 s apart, for about 0.5 s: several, but not endless.
    rounds = len(_calls(peers[0]))
    assert 3 <= rounds <= 12
    assert len(_calls(peers[1])) == rounds


def test_a_chaincode_refusal_is_not_retried(keys: tuple[Identity, Signer]) -> None:
    first, second = _peers(keys, 2)
    first.fail = {"Endorse": FakeRpcError(grpc.StatusCode.ABORTED, "already anchored")}
    with _gateway(keys, [first, second]) as gateway:
        contract = gateway.get_network("trace").get_contract("tracehub")
        with pytest.raises(EndorseError, match="already anchored"):
            contract.submit("AnchorBatch", "{}")
    assert _calls(second) == []


def test_a_peer_that_cannot_plan_an_endorsement_yet_is_passed_over(
    keys: tuple[Identity, Signer],
) -> None:
    """A just-restarted peer that has not heard of the other organisation's peers from gossip
    answers FAILED_PRECONDITION; the org's next peer endorses (seen on a clean CI run, where
    the caller otherwise failed)."""
    first, second = _peers(keys, 2)
    unplanned = FakeRpcError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "no combination of peers can be derived which satisfy the endorsement policy: "
        "required chaincodes are not installed on sufficient peers",
    )
    first.fail = {"Endorse": unplanned}
    with _gateway(keys, [first, second]) as gateway:
        contract = gateway.get_network("trace").get_contract("tracehub")
        assert contract.submit("EnrolDevice", "d1").block_number == 42
    assert _calls(first) == ["Endorse"]
    assert _calls(second) == ["Endorse", "Submit", "CommitStatus"]


def test_a_missing_commit_re_sends_the_same_envelope(keys: tuple[Identity, Signer]) -> None:
    """The first commit-status wait times out (the orderer lost the transaction); the same
    signed envelope is submitted again and its commit then reported."""
    (peer,) = _peers(keys, 1)
    late = FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
    original = peer.CommitStatus
    waits: list[float | None] = []

    def commit_status(data: bytes, timeout: float | None) -> object:
        waits.append(timeout)
        if len(waits) == 1:
            raise late
        return original(data, timeout)

    peer.CommitStatus = commit_status  # type: ignore[method-assign]
    with _gateway(keys, [peer]) as gateway:
        contract = gateway.get_network("trace").get_contract("tracehub")
        assert contract.submit("PutRecord", "id1").block_number == 42
    submits = [request for method, request, _ in peer.requests if method == "Submit"]
    assert len(submits) == 2
    assert submits[0].prepared_transaction == submits[1].prepared_transaction
    assert waits[0] == pytest.approx(FAST.resubmit_after)


def test_a_commit_that_never_comes_times_out(keys: tuple[Identity, Signer]) -> None:
    (peer,) = _peers(keys, 1)
    peer.fail = {"CommitStatus": FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "late")}
    timeouts = Timeouts(commit_status=0.5)
    with _gateway(keys, [peer], timeouts=timeouts) as gateway:
        contract = gateway.get_network("trace").get_contract("tracehub")
        with pytest.raises(LedgerTimeoutError):
            contract.submit("PutRecord", "id1")
    assert 2 <= _calls(peer).count("Submit") <= 5


def test_which_failures_are_retried() -> None:
    assert retriable(grpc.StatusCode.UNAVAILABLE, "commit_status")
    assert retriable(grpc.StatusCode.DEADLINE_EXCEEDED, "submit")
    assert not retriable(grpc.StatusCode.DEADLINE_EXCEEDED, "commit_status")
    assert not retriable(grpc.StatusCode.ABORTED, "endorse")
    # A restarted peer that cannot plan an endorsement yet: another peer can, or it later.
    unplanned = "no combination of peers can be derived which satisfy the endorsement policy"
    assert retriable(grpc.StatusCode.FAILED_PRECONDITION, "endorse", unplanned)
    assert not retriable(grpc.StatusCode.FAILED_PRECONDITION, "endorse", "no endorsers found")
    assert not retriable(grpc.StatusCode.FAILED_PRECONDITION, "evaluate", unplanned)
    with pytest.raises(ValueError, match="retry_for"):
        Failover(retry_for=0)


def test_topology_and_port_offset_choose_the_peers() -> None:
    single = FabricSettings(crypto_dir=Path("/nonexistent"))
    assert single.gateway_endpoints(1) == ("127.0.0.1:17051",)
    ha = FabricSettings(crypto_dir=single.crypto_dir, topology="ha", port_offset=13000)
    assert ha.gateway_endpoints(1) == ("127.0.0.1:30051", "127.0.0.1:30061")
    assert ha.gateway_endpoints(2) == ("127.0.0.1:31051",)
    assert ha.orderer_ops_urls[2] == "http://127.0.0.1:30643"
    with pytest.raises(ValueError, match="topology"):
        FabricSettings(crypto_dir=single.crypto_dir, topology="triple")


def test_connect_to_several_peers_none_reachable(keys: tuple[Identity, Signer]) -> None:
    """With a connect timeout, at least one of the peers must answer in time."""
    endpoints = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    with pytest.raises(LedgerUnavailableError, match="any gateway"):
        Gateway.connect(
            endpoints, identity=keys[0], signer=keys[1], connect_timeout=0.3, failover=FAST
        )
