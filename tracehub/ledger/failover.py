"""When a gateway call may be tried again, on the next peer, and for how long.

With several gateway peers of one organisation (the `ha` topology, docs/deployment.md) a client
outlives the loss of any one of them: a call the peer cannot serve (gRPC ``UNAVAILABLE``: the
peer is down, or it found no orderer or endorser to serve it; or, after its restart, it cannot
plan an endorsement yet) goes to the next peer, and after a
whole round of failures the round is tried again until ``retry_for`` seconds have passed (a Raft
election among the orderers takes a few seconds). Every call is safe to repeat: proposals and
commit-status requests change nothing, and a transaction envelope sent twice is committed at
most once (Fabric marks the second copy ``DUPLICATE_TXID``).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class Failover:
    """How long to keep trying; without a Failover a client tries its one peer once."""

    #: seconds after the first failure of a call during which rounds over the peers are retried
    retry_for: float = 30.0
    #: pause between two rounds over the peers
    backoff: float = 0.5
    #: seconds to wait for a commit before sending the same envelope again: an orderer that
    #: accepted a transaction and died before the Raft leader ordered it loses it
    resubmit_after: float = 5.0

    def __post_init__(self) -> None:
        for name in ("retry_for", "backoff", "resubmit_after"):
            if getattr(self, name) <= 0:
                raise ValueError(f"failover {name} must be positive")


#: What a Fabric Gateway answers (``FAILED_PRECONDITION``) while it knows too few peers to plan an
#: endorsement: a peer just restarted has not yet heard of the other organisation's peers from
#: gossip (seen for some seconds after a restart; fabric internal/pkg/gateway/registry.go). Another
#: peer of the organisation, or the same a little later, can plan it.
NO_ENDORSEMENT_PLAN = "no combination of peers can be derived"


def retriable(code: grpc.StatusCode | None, operation: str, message: str | None = None) -> bool:
    """Whether ``operation``, failed with ``code`` (and gRPC ``message``), may go to another
    peer (or the same, later).

    A deadline passed is retried too, except while waiting for a commit: an orderer that lost
    its leader can hold a submission until the deadline. The commit wait has its own remedy
    (re-sending the envelope, :attr:`Failover.resubmit_after`). An endorsement the peer cannot
    plan yet (`NO_ENDORSEMENT_PLAN`) is retried: a proposal changes nothing.
    """
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return operation == "endorse" and NO_ENDORSEMENT_PLAN in (message or "")
    return code == grpc.StatusCode.DEADLINE_EXCEEDED and operation != "commit_status"
