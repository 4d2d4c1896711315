"""Verify a reading's proof end to end from public material, without the hub's database.

The steps, each of which must pass:
1. ``path``: the audit path leads from the reading hash to the proof's root (offline).
2. ``ipfs``: the batch object is fetched by CID; its header names the same batch and root, and
   reading ``index`` in it hashes to the proof's reading hash.
3. ``signature``: the envelope verifies against the CA bundle and CRL (public), with the device
   certificate found on the ledger by its fingerprint; it is the certificate the proof names.
4. ``ledger``: the anchor of the batch on the ledger has the same root, CID and transaction.

EPCIS event proofs are checked by :func:`verify_event_proof` (steps listed there); a file an
event names (an inspection report, a trade document) by :func:`verify_document`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from tracehub.batch import ReadingBatchFormatError, envelope_at, read_header
from tracehub.epcis.batch import EventBatchFormatError, decode_event_batch
from tracehub.epcis.errors import EPCISValidationError
from tracehub.epcis.hashing import event_hash
from tracehub.epcis.proof import EventProof
from tracehub.ipfs import ContentStore, IPFSError
from tracehub.ledger import Contract, LedgerError
from tracehub.proof import Proof
from tracehub.verify import CertificateDirectory, TrustStore, VerificationError, verify_envelope


@dataclass
class AuditResult:
    """Which steps passed; `failure` names the first that did not, with the reason."""

    passed: list[str] = field(default_factory=list)
    failure: str | None = None
    envelope: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def fail(self, step: str, reason: str) -> AuditResult:
        self.failure = f"{step}: {reason}"
        return self


def verify_proof(
    proof: Proof,
    *,
    ipfs: ContentStore,
    ledger: Contract,
    trust: TrustStore,
    directory: CertificateDirectory,
) -> AuditResult:
    """Check a proof against IPFS, the device PKI and the ledger; stops at the first failure."""
    result = AuditResult()
    if not proof.check_path():
        return result.fail("path", "the audit path does not lead from the reading to the root")
    result.passed.append("path")

    try:
        batch = ipfs.cat(proof.ipfs_cid)
        header = read_header(batch)
        envelope = envelope_at(batch, proof.index)
    except (IPFSError, ReadingBatchFormatError) as exc:
        return result.fail("ipfs", str(exc))
    if header.batch_id != proof.batch_id or header.root.hex() != proof.root:
        return result.fail("ipfs", "the batch object names another batch or root")
    if header.count != proof.batch_size:
        return result.fail(
            "ipfs", f"batch holds {header.count} readings, proof says {proof.batch_size}"
        )
    if hashlib.sha256(envelope).hexdigest() != proof.reading_hash:
        return result.fail("ipfs", f"reading {proof.index} of the batch has another hash")
    result.envelope = envelope
    result.passed.append("ipfs")

    try:
        verified = verify_envelope(envelope, trust, directory)
    except VerificationError as exc:
        return result.fail("signature", f"{exc.reason}: {exc.detail}")
    if verified.fingerprint != proof.device_certificate_sha256:
        return result.fail("signature", "signed by another certificate than the proof names")
    result.passed.append("signature")

    if (differs := _anchor_differs(proof, ledger)) is not None:
        return result.fail("ledger", differs)
    result.passed.append("ledger")
    return result


def _anchor_differs(proof: Proof | EventProof, ledger: Contract) -> str | None:
    """Why the ledger's anchor of the proof's batch does not confirm the proof (its root, CID
    and transaction), or None when it does."""
    try:
        anchor = json.loads(ledger.evaluate("GetAnchor", proof.batch_id))
    except LedgerError as exc:
        return str(exc)
    for name, expected in (
        ("root", proof.root),
        ("ipfs_cid", proof.ipfs_cid),
        ("tx_id", proof.tx_id),
    ):
        if anchor.get(name) != expected:
            return f"anchored {name} {anchor.get(name)!r} differs"
    return None


def verify_event_proof(proof: EventProof, *, ipfs: ContentStore, ledger: Contract) -> AuditResult:
    """Check an EPCIS event proof (docs/epcis.md); stops at the first failing step:

    1. ``ipfs``: the event batch is fetched by CID; its header names the proof's batch and
       size; event ``index`` is taken from it.
    2. ``event-hash``: the CBV 2.0 hash recomputed from that event's bytes is the proof's.
    3. ``path``: the leaf follows from the hash and the audit path leads to the proof's root.
    4. ``ledger``: GetAnchor of the batch has the proof's root, CID and transaction (and the
       batch header the same root).
    """
    result = AuditResult()
    try:
        batch = decode_event_batch(ipfs.cat(proof.ipfs_cid))
    except (IPFSError, EventBatchFormatError) as exc:
        return result.fail("ipfs", str(exc))
    if batch.batch_id != proof.batch_id:
        return result.fail("ipfs", f"the batch object is batch {batch.batch_id!r}")
    if len(batch.events) != proof.batch_size:
        return result.fail(
            "ipfs", f"batch holds {len(batch.events)} events, proof says {proof.batch_size}"
        )
    event = batch.events[proof.index]
    result.envelope = event
    result.passed.append("ipfs")

    try:
        recomputed = event_hash(json.loads(event))
    except (ValueError, EPCISValidationError) as exc:
        return result.fail(
            "event-hash", f"event {proof.index} of the batch cannot be hashed: {exc}"
        )
    if recomputed != proof.event_hash:
        return result.fail(
            "event-hash",
            f"event {proof.index} of the batch hashes to {recomputed}, not the proof's",
        )
    result.passed.append("event-hash")

    if not proof.check_path():
        return result.fail("path", "the leaf or audit path does not lead to the proof's root")
    result.passed.append("path")

    if (differs := _anchor_differs(proof, ledger)) is not None:
        return result.fail("ledger", differs)
    if batch.root != proof.root:
        return result.fail("ledger", "the batch object's header names another root")
    result.passed.append("ledger")
    return result


def verify_document(
    document: bytes, proof: EventProof, *, ipfs: ContentStore, ledger: Contract
) -> AuditResult:
    """Check that ``document`` is a file the proven event names: the event proof passes
    (:func:`verify_event_proof`), then ``document``: the SHA-256 of the bytes, as an RFC 6920
    ``ni:///sha-256;<hex>`` URI, is among the anchored event's ``certificationInfo``. One
    changed byte changes the hash, so the step fails."""
    result = verify_event_proof(proof, ipfs=ipfs, ledger=ledger)
    if not result.ok or result.envelope is None:
        return result
    digest = hashlib.sha256(document).hexdigest()
    try:
        named = json.loads(result.envelope).get("certificationInfo", [])
    except ValueError as exc:
        return result.fail("document", f"the anchored event is not JSON: {exc}")
    if isinstance(named, str):
        named = [named]
    if f"ni:///sha-256;{digest}" not in named:
        return result.fail(
            "document", f"the file's SHA-256 {digest} is not one the anchored event names"
        )
    result.passed.append("document")
    return result
