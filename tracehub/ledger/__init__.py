"""Client for the Hyperledger Fabric Gateway gRPC service (Evaluate, Endorse, Submit, CommitStatus).

Shaped like the official fabric-gateway clients::

    identity, signer = load_msp_identity("users/User1@org1.tracehub.local/msp", "Org1MSP")
    with Gateway.connect("127.0.0.1:17051", identity=identity, signer=signer,
                         tls_root_cert=ca_pem) as gateway:
        contract = gateway.get_network("trace").get_contract("tracehub")
        record = contract.evaluate("GetRecord", "id1")
        committed = contract.submit("PutRecord", "id1", "{...}")
"""

from .contract import Commit, CommitStatus, Contract, Proposal, SubmitResult, Transaction
from .errors import (
    CommitError,
    CommitStatusError,
    EndorseError,
    ErrorDetail,
    EvaluateError,
    LedgerError,
    LedgerTimeoutError,
    LedgerUnavailableError,
    MVCCConflictError,
    SubmitError,
)
from .failover import Failover
from .gateway import Gateway, Timeouts
from .identity import Identity, Signer, load_msp_identity
from .network import Network

__all__ = [
    "Commit",
    "CommitError",
    "CommitStatus",
    "CommitStatusError",
    "Contract",
    "EndorseError",
    "ErrorDetail",
    "EvaluateError",
    "Failover",
    "Gateway",
    "Identity",
    "LedgerError",
    "LedgerTimeoutError",
    "LedgerUnavailableError",
    "MVCCConflictError",
    "Network",
    "Proposal",
    "Signer",
    "SubmitError",
    "SubmitResult",
    "Timeouts",
    "Transaction",
    "load_msp_identity",
]
