"""Payment decisions on the Fabric ledger: chaincode records ``PutRecord(id, value)``, written
once, in the hub's own namespace (the chaincode keeps each organisation's records apart, so no
other member can take an id first). A decision row is stored first (tx_id NULL) and published
afterwards, so a crash or a ledger outage between the two leaves a row that the next
`publish_pending` call completes; a record already on the ledger (published, then the process
died) is read back and adopted only when it holds the same decision: anything else fails
loudly (`LedgerConflictError`) and the row stays unpublished for an operator to look at.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from commerce.errors import CommerceConflictError
from tracehub.ledger import Contract, EndorseError, EvaluateError

log = logging.getLogger(__name__)


class LedgerConflictError(CommerceConflictError):
    """The ledger already holds a different record under a decision's id."""


class RecordLedger(Protocol):
    """Write-once JSON records."""

    def put(self, record_id: str, value: dict[str, Any]) -> str:
        """Store ``value`` under a new id; returns the transaction id."""
        ...

    def get(self, record_id: str) -> dict[str, Any]:
        """The stored record: {id, value, tx_id, timestamp, creator_msp}."""
        ...


class FabricRecords:
    """`RecordLedger` over the tracehub chaincode's PutRecord/GetRecord."""

    def __init__(self, contract: Contract) -> None:
        self._contract = contract

    def put(self, record_id: str, value: dict[str, Any]) -> str:
        try:
            return self._contract.submit("PutRecord", record_id, json.dumps(value)).tx_id
        except EndorseError as exc:
            if "already exists" not in str(exc):
                raise
            existing = self.get(record_id)
            if existing.get("value") != value:
                raise LedgerConflictError(
                    f"the ledger holds a different record {record_id} "
                    f"(tx {existing.get('tx_id')}); not adopting it"
                ) from exc
            return str(existing["tx_id"])

    def get(self, record_id: str) -> dict[str, Any]:
        record: dict[str, Any] = json.loads(self._contract.evaluate("GetRecord", record_id))
        return record


def publish_pending(conn: Any, ledger: RecordLedger) -> int:
    """Put every decision not yet on the ledger; returns how many were published."""
    rows = conn.execute(
        "SELECT order_id::text, seq, decision, evidence, record_id, decided_at"
        " FROM payment_decisions WHERE tx_id IS NULL ORDER BY decided_at, seq"
    ).fetchall()
    published = 0
    for order_id, seq, decision, evidence, record_id, decided_at in rows:
        value = {
            "order_id": order_id,
            "seq": seq,
            "decision": decision,
            "decided_at": decided_at.isoformat(),
            "evidence": evidence,
        }
        try:
            tx_id = ledger.put(record_id, value)
        except LedgerConflictError as exc:
            log.error("decision %s NOT published: %s", record_id, exc)
            break
        except Exception as exc:  # ledger unreachable or refusing: the row waits for next time
            log.warning("decision %s not yet on the ledger: %s", record_id, exc)
            break
        conn.execute(
            "UPDATE payment_decisions SET tx_id = %s WHERE record_id = %s", (tx_id, record_id)
        )
        conn.commit()
        published += 1
    return published


__all__ = [
    "EvaluateError",
    "FabricRecords",
    "LedgerConflictError",
    "RecordLedger",
    "publish_pending",
]
