"""The ledger client against the real Fabric network: Org1 writes, Org2 reads, the chaincode
refuses a duplicate id, history is queryable, and failures come back as named errors."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import pytest

from tracehub.config import Settings
from tracehub.ledger import (
    Contract,
    EndorseError,
    EvaluateError,
    Gateway,
    LedgerTimeoutError,
    LedgerUnavailableError,
    Timeouts,
    load_msp_identity,
)
from tracehub.ledger.local import connect_org

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def org1(stack: Settings) -> Iterator[Gateway]:
    with connect_org(stack.fabric, 1) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def org2(stack: Settings) -> Iterator[Gateway]:
    with connect_org(stack.fabric, 2) as gateway:
        yield gateway


def _contract(gateway: Gateway, settings: Settings) -> Contract:
    return gateway.get_network(settings.fabric.channel).get_contract(settings.fabric.chaincode)


def _new_id() -> str:
    return f"test-{uuid.uuid4().hex}"


def test_org1_submits_and_org2_reads_back(org1: Gateway, org2: Gateway, stack: Settings) -> None:
    record_id = _new_id()
    value = {"kind": "smoke", "n": 1}
    result = _contract(org1, stack).submit("PutRecord", record_id, json.dumps(value))

    assert len(result.tx_id) == 64 and int(result.tx_id, 16) >= 0
    assert result.status == "VALID"
    assert result.block_number > 0
    written = json.loads(result.result)
    assert written["tx_id"] == result.tx_id
    assert written["creator_msp"] == "Org1MSP"

    read = json.loads(_contract(org2, stack).evaluate("GetRecord", record_id))
    assert read == written
    assert read["value"] == value


def test_duplicate_id_is_refused_by_the_chaincode(org1: Gateway, stack: Settings) -> None:
    contract = _contract(org1, stack)
    record_id = _new_id()
    first = contract.submit("PutRecord", record_id, '{"v": 1}')
    with pytest.raises(EndorseError, match=f"record {record_id} already exists") as refused:
        contract.submit("PutRecord", record_id, '{"v": 2}')
    assert refused.value.tx_id  # the refused transaction is named
    # The first write stands untouched.
    assert json.loads(contract.evaluate("GetRecord", record_id))["tx_id"] == first.tx_id


def test_duplicate_ids_submitted_concurrently_commit_once(org1: Gateway, stack: Settings) -> None:
    # Both may endorse before either commits; then the ledger's MVCC check must invalidate one.
    contract = _contract(org1, stack)
    record_id = _new_id()
    outcomes: list[str] = []

    def put(n: int) -> None:
        try:
            contract.submit("PutRecord", record_id, json.dumps({"writer": n}))
            outcomes.append("committed")
        except Exception as exc:  # collected and asserted below
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=put, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcomes.count("committed") == 1, outcomes
    assert set(outcomes) - {"committed"} <= {"EndorseError", "MVCCConflictError"}
    history = json.loads(contract.evaluate("GetRecordHistory", record_id))
    assert len(history) == 1


def test_history_lists_the_committed_write(org1: Gateway, org2: Gateway, stack: Settings) -> None:
    record_id = _new_id()
    result = _contract(org1, stack).submit("PutRecord", record_id, '{"step": "commissioned"}')
    history = json.loads(_contract(org2, stack).evaluate("GetRecordHistory", record_id))
    assert [entry["tx_id"] for entry in history] == [result.tx_id]
    assert history[0]["is_delete"] is False
    assert history[0]["value"]["value"] == {"step": "commissioned"}


def test_missing_record_and_bad_input_are_clear_errors(org2: Gateway, stack: Settings) -> None:
    contract = _contract(org2, stack)
    with pytest.raises(EvaluateError, match="record no-such-id not found"):
        contract.evaluate("GetRecord", "no-such-id")
    with pytest.raises(EvaluateError, match="unknown function 'Nope'"):
        contract.evaluate("Nope")
    with pytest.raises(EndorseError, match="is not JSON"):
        contract.submit("PutRecord", _new_id(), "{not json")
    assert contract.evaluate("RecordExists", "no-such-id") == b"false"


def test_identity_from_another_org_is_refused_by_the_gateway(stack: Settings) -> None:
    # Org2's user presented to Org1's peer under Org1's MSP id: the signature checks out but the
    # certificate does not chain to Org1's CA, so the peer refuses the proposal.
    identity, signer = load_msp_identity(stack.fabric.user_msp_dir(2), stack.fabric.msp_id(2))
    forged = type(identity)(msp_id="Org1MSP", certificate=identity.certificate)
    with (
        Gateway.connect(
            stack.fabric.peer_endpoints[1],
            identity=forged,
            signer=signer,
            tls_root_cert=stack.fabric.tls_ca_file(1).read_bytes(),
        ) as gateway,
        pytest.raises(EvaluateError, match="access denied"),
    ):
        _contract(gateway, stack).evaluate("RecordExists", "x")


def test_timeout_is_reported_as_such(stack: Settings) -> None:
    timeouts = Timeouts(evaluate=0.000_001)
    with (
        connect_org(stack.fabric, 1, timeouts=timeouts) as gateway,
        pytest.raises(LedgerTimeoutError),
    ):
        _contract(gateway, stack).evaluate("RecordExists", "x")


def test_unreachable_peer_is_reported_as_unavailable(stack: Settings) -> None:
    identity, signer = load_msp_identity(stack.fabric.user_msp_dir(1), stack.fabric.msp_id(1))
    with (
        Gateway.connect(
            "127.0.0.1:9",
            identity=identity,
            signer=signer,
            tls_root_cert=stack.fabric.tls_ca_file(1).read_bytes(),
        ) as gateway,
        pytest.raises(LedgerUnavailableError),
    ):
        _contract(gateway, stack).evaluate("RecordExists", "x")


def test_concurrent_submits_of_different_ids_all_commit(org1: Gateway, stack: Settings) -> None:
    # Several transactions in the chaincode at once, on the same peer streams: each must commit.
    # (fabric-chaincode-python's own server broke its stream here; see chaincode/server.py.)
    contract = _contract(org1, stack)
    ids = [_new_id() for _ in range(8)]
    outcomes: dict[str, str] = {}

    def put(record_id: str) -> None:
        try:
            outcomes[record_id] = contract.submit("PutRecord", record_id, "{}").status
        except Exception as exc:  # collected and asserted below
            outcomes[record_id] = repr(exc)

    threads = [threading.Thread(target=put, args=(record_id,)) for record_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcomes == dict.fromkeys(ids, "VALID")
