"""Smart contract invocation: evaluate (query) and submit (endorse, order, commit).

``Contract.evaluate`` / ``Contract.submit`` cover the usual cases. The step-by-step flow
of the official clients is available too::

    proposal = contract.new_proposal("PutRecord", args=["id1", "{}"])
    transaction = proposal.endorse()      # -> Transaction, .result is the chaincode result
    commit = transaction.submit()         # -> Commit (sent to the orderer)
    status = commit.status()              # -> CommitStatus, waits for the block
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import proposal as msgs
from .errors import (
    EndorseError,
    EvaluateError,
    LedgerTimeoutError,
    commit_error,
    tx_validation_code_name,
)
from .proposal import Arg

if TYPE_CHECKING:
    from .gateway import GatewayClient


@dataclass(frozen=True)
class CommitStatus:
    """Outcome of a transaction's commit: validation code and block."""

    tx_id: str
    block_number: int
    code: int
    successful: bool

    @property
    def code_name(self) -> str:
        """``TxValidationCode`` name, e.g. ``"VALID"`` or ``"MVCC_READ_CONFLICT"``."""
        return tx_validation_code_name(self.code)


@dataclass(frozen=True)
class SubmitResult:
    """A successfully committed transaction."""

    tx_id: str
    block_number: int
    status: str
    result: bytes


class Commit:
    """A transaction sent to the orderer; :meth:`status` waits for it to be committed."""

    def __init__(
        self,
        client: GatewayClient,
        *,
        tx_id: str,
        channel_id: str,
        transaction_name: str,
        result: bytes,
    ) -> None:
        self._client = client
        self.tx_id = tx_id
        self.channel_id = channel_id
        self.transaction_name = transaction_name
        self.result = result
        request = msgs.commit_status_request_bytes(tx_id, channel_id, client.creator)
        self._request = msgs.signed_commit_status_request(request, client.sign(request))

    def status(self, *, timeout: float | None = None) -> CommitStatus:
        """Block until the transaction is committed and return its validation status.

        Does not raise for an invalid transaction; see :meth:`Contract.submit` for that.
        """
        response = self._client.call(
            "commit_status",
            self._request,
            timeout=timeout,
            tx_id=self.tx_id,
            transaction_name=self.transaction_name,
        )
        code = int(response.result)
        return CommitStatus(
            tx_id=self.tx_id,
            block_number=int(response.block_number),
            code=code,
            successful=code == 0,  # TxValidationCode.VALID
        )


class Transaction:
    """An endorsed transaction, signed and ready to be submitted to the orderer."""

    def __init__(self, client: GatewayClient, proposal: Proposal, envelope: Any) -> None:
        self._client = client
        self._proposal = proposal
        try:
            info = msgs.parse_prepared_transaction(envelope)
        except ValueError as exc:
            raise EndorseError(
                f"endorsement of {proposal.transaction_name} returned {exc}",
                tx_id=proposal.tx_id,
                operation="endorse",
                transaction_name=proposal.transaction_name,
            ) from exc
        if info.tx_id and info.tx_id != proposal.tx_id:
            raise EndorseError(
                f"endorsement of {proposal.transaction_name} returned transaction "
                f"{info.tx_id}, expected {proposal.tx_id}",
                tx_id=proposal.tx_id,
                operation="endorse",
                transaction_name=proposal.transaction_name,
            )
        if info.status >= 400:
            raise EndorseError(
                f"endorsement of {proposal.transaction_name} failed: "
                f"chaincode response {info.status}, {info.message} [tx {proposal.tx_id}]",
                tx_id=proposal.tx_id,
                operation="endorse",
                transaction_name=proposal.transaction_name,
            )
        self.result: bytes = info.payload
        envelope.signature = client.sign(envelope.payload)
        self.envelope = envelope

    @property
    def tx_id(self) -> str:
        """Transaction id."""
        return self._proposal.tx_id

    def submit(self, *, timeout: float | None = None) -> Commit:
        """Send the transaction to the orderer (does not wait for the commit)."""
        proposal = self._proposal
        commit = Commit(
            self._client,
            tx_id=proposal.tx_id,
            channel_id=proposal.channel_id,
            transaction_name=proposal.transaction_name,
            result=self.result,
        )
        self._client.call(
            "submit",
            msgs.submit_request(proposal.tx_id, proposal.channel_id, self.envelope),
            timeout=timeout,
            tx_id=proposal.tx_id,
            transaction_name=proposal.transaction_name,
        )
        return commit


class Proposal:
    """A signed transaction proposal; evaluate it (query) or endorse it (submit path)."""

    def __init__(
        self,
        client: GatewayClient,
        *,
        channel_id: str,
        chaincode_name: str,
        transaction_name: str,
        args: Sequence[Arg] = (),
        transient: Mapping[str, Arg] | None = None,
        endorsing_orgs: Sequence[str] = (),
    ) -> None:
        self._client = client
        self.channel_id = channel_id
        self.chaincode_name = chaincode_name
        self.transaction_name = transaction_name
        self.endorsing_orgs = tuple(endorsing_orgs)
        built = msgs.build_proposal(
            creator=client.creator,
            channel_id=channel_id,
            chaincode_name=chaincode_name,
            transaction_name=transaction_name,
            args=args,
            transient=transient,
        )
        self.tx_id = built.tx_id
        self.proposal_bytes = built.proposal_bytes
        self.signature = client.sign(built.proposal_bytes)
        self._signed = msgs.signed_proposal(built.proposal_bytes, self.signature)

    def evaluate(self, *, timeout: float | None = None) -> bytes:
        """Run the transaction function on one peer without ordering; return its result."""
        response = self._client.call(
            "evaluate",
            msgs.evaluate_request(self.tx_id, self.channel_id, self._signed, self.endorsing_orgs),
            timeout=timeout,
            tx_id=self.tx_id,
            transaction_name=self.transaction_name,
        )
        result = response.result
        status = int(result.status)
        if status >= 400:
            raise EvaluateError(
                f"evaluation of {self.transaction_name} failed: chaincode response "
                f"{status}, {result.message} [tx {self.tx_id}]",
                status=status,
                response_message=str(result.message),
                tx_id=self.tx_id,
                operation="evaluate",
                transaction_name=self.transaction_name,
            )
        return bytes(result.payload)

    def endorse(self, *, timeout: float | None = None) -> Transaction:
        """Collect endorsements through the gateway; returns the signed transaction."""
        response = self._client.call(
            "endorse",
            msgs.endorse_request(self.tx_id, self.channel_id, self._signed, self.endorsing_orgs),
            timeout=timeout,
            tx_id=self.tx_id,
            transaction_name=self.transaction_name,
        )
        if not response.HasField("prepared_transaction"):
            raise EndorseError(
                f"endorsement of {self.transaction_name} returned no transaction [tx {self.tx_id}]",
                tx_id=self.tx_id,
                operation="endorse",
                transaction_name=self.transaction_name,
            )
        return Transaction(self._client, self, response.prepared_transaction)


class Contract:
    """A smart contract of a chaincode on one channel."""

    def __init__(
        self,
        client: GatewayClient,
        channel_id: str,
        chaincode_name: str,
        contract_name: str | None = None,
    ) -> None:
        self._client = client
        self.channel_id = channel_id
        self.chaincode_name = chaincode_name
        self.contract_name = contract_name or None

    def qualified_name(self, function: str) -> str:
        """Transaction name sent to the chaincode (``contract:function`` if namespaced)."""
        return f"{self.contract_name}:{function}" if self.contract_name else function

    def new_proposal(
        self,
        function: str,
        *,
        args: Sequence[Arg] = (),
        transient: Mapping[str, Arg] | None = None,
        endorsing_orgs: Sequence[str] = (),
    ) -> Proposal:
        """Build and sign a proposal for ``function(*args)``.

        ``transient`` data is passed to the chaincode but not recorded on the ledger;
        ``endorsing_orgs`` (MSP ids) restricts which organisations endorse or evaluate.
        """
        if not function:
            raise ValueError("transaction function name must not be empty")
        if isinstance(args, str | bytes):
            raise TypeError("args must be a sequence of str/bytes, not a single value")
        return Proposal(
            self._client,
            channel_id=self.channel_id,
            chaincode_name=self.chaincode_name,
            transaction_name=self.qualified_name(function),
            args=args,
            transient=transient,
            endorsing_orgs=endorsing_orgs,
        )

    def evaluate(
        self,
        function: str,
        *args: Arg,
        transient: Mapping[str, Arg] | None = None,
        endorsing_orgs: Sequence[str] = (),
        timeout: float | None = None,
    ) -> bytes:
        """Query: run ``function(*args)`` on a peer and return the chaincode's payload."""
        proposal = self.new_proposal(
            function, args=args, transient=transient, endorsing_orgs=endorsing_orgs
        )
        return proposal.evaluate(timeout=timeout)

    def submit_async(
        self,
        function: str,
        *args: Arg,
        transient: Mapping[str, Arg] | None = None,
        endorsing_orgs: Sequence[str] = (),
    ) -> Commit:
        """Endorse and send to the orderer; returns a :class:`Commit` (``.result`` is ready)."""
        proposal = self.new_proposal(
            function, args=args, transient=transient, endorsing_orgs=endorsing_orgs
        )
        return proposal.endorse().submit()

    def submit(
        self,
        function: str,
        *args: Arg,
        transient: Mapping[str, Arg] | None = None,
        endorsing_orgs: Sequence[str] = (),
    ) -> SubmitResult:
        """Endorse, order and wait for the commit of ``function(*args)``.

        Raises :class:`~tracehub.ledger.errors.CommitError` (or ``MVCCConflictError``) if
        the transaction is committed as invalid.
        """
        proposal = self.new_proposal(
            function, args=args, transient=transient, endorsing_orgs=endorsing_orgs
        )
        transaction = proposal.endorse()
        commit = transaction.submit()
        status = self._await_commit(transaction, commit)
        if not status.successful:
            raise commit_error(
                code=status.code,
                tx_id=status.tx_id,
                block_number=status.block_number,
                transaction_name=commit.transaction_name,
            )
        return SubmitResult(
            tx_id=status.tx_id,
            block_number=status.block_number,
            status=status.code_name,
            result=commit.result,
        )

    def _await_commit(self, transaction: Transaction, commit: Commit) -> CommitStatus:
        """The commit's status; with failover, the same envelope is sent again whenever no
        commit came within ``resubmit_after`` (it may have died with an orderer), until the
        commit-status timeout. A second copy of a committed envelope is never valid."""
        failover = self._client.failover
        if failover is None:
            return commit.status()
        give_up_at = time.monotonic() + self._client.timeouts.commit_status
        while True:
            started = time.monotonic()
            wait = max(min(failover.resubmit_after, give_up_at - started), 0.1)
            try:
                return commit.status(timeout=wait)
            except LedgerTimeoutError:
                if time.monotonic() >= give_up_at:
                    raise
            # A peer that gave up early still gets the full wait between two sends.
            time.sleep(max(0.0, started + wait - time.monotonic()))
            transaction.submit()

    def __repr__(self) -> str:
        name = f", contract={self.contract_name!r}" if self.contract_name else ""
        return f"Contract({self.chaincode_name!r} on {self.channel_id!r}{name})"
