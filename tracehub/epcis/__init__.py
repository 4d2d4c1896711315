"""EPCIS 2.0 formats every verifier needs: validation, CBV 2.0 event hashes, event batches, proofs.

Capture, query and anchoring are the storage side's (ingest/epcis/); see docs/epcis.md.
"""

from __future__ import annotations

from tracehub.epcis.errors import EPCISValidationError
from tracehub.epcis.hashing import event_hash
from tracehub.epcis.proof import EventProof

__all__ = ["EPCISValidationError", "EventProof", "event_hash"]
