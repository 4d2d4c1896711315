"""Audit bundles, the format and its offline check: every proof of a selection plus what
checking them needs, in one JSON file.

A bundle (format in docs/audit-bundle.md) holds, for a batch, lot, shipment or time range:
the reading and EPCIS event proofs, each anchored batch's object bytes from IPFS (base64) with
the ledger's anchor record (GetAnchor) and block number, the device certificates that signed
the readings, and the CA certificates and CRLs. :func:`verify_bundle` checks it without the
hub: offline from the bundle alone, or also against the ledger (``ledger=``). Building one is
the storage side's (ingest/bundle.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tracehub.batch import ReadingBatchFormatError, decode_batch
from tracehub.epcis.batch import EventBatchFormatError, decode_event_batch
from tracehub.epcis.errors import EPCISValidationError
from tracehub.epcis.hashing import event_hash, hash_hex
from tracehub.epcis.proof import EVENT_PROOF_KIND, EventProof
from tracehub.errors import InvalidError
from tracehub.merkle import MerkleTree
from tracehub.proof import Proof, ProofFormatError
from tracehub.verify import (
    InMemoryDirectory,
    TrustStore,
    VerificationError,
    load_pem_crls,
    verify_envelope,
)

__all__ = [
    "BUNDLE_KIND",
    "BUNDLE_VERSION",
    "BundleError",
    "BundleReport",
    "CheckedBatch",
    "check_batch_entry",
    "is_bundle",
    "load_bundle",
    "raw_cid",
    "verify_bundle",
]

BUNDLE_KIND = "tracehub-audit-bundle"
BUNDLE_VERSION = 1
#: A bundle larger than this many records is refused: narrow the selection instead.
MAX_RECORDS = 20_000


class BundleError(InvalidError):
    """The file is not an audit bundle, or one of its entries fails a check."""


class _Ipfs(Protocol):
    def cat(self, cid: str) -> bytes: ...


class _Ledger(Protocol):
    def evaluate(self, name: str, *args: str) -> bytes: ...


def raw_cid(data: bytes) -> str:
    """The CIDv1 (raw codec, sha2-256, base32) of bytes stored as a single raw block: what Kubo
    gives an object up to its chunk size with ``raw-leaves``; larger objects are UnixFS DAGs."""
    multihash = b"\x12\x20" + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(b"\x01\x55" + multihash).decode().lower().rstrip("=")


# ------------------------------------------------------------------------------ verification


@dataclass
class BundleReport:
    """What verified: counts, the trust anchors used, and each failure with its reason."""

    batches_ok: int = 0
    records_ok: int = 0
    failures: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)  # SHA-256 of the root CA certificates used

    @property
    def ok(self) -> bool:
        return not self.failures


def _trust(bundle: Mapping[str, Any], ca_override: bytes | None) -> TrustStore:
    trust = bundle.get("trust")
    if not isinstance(trust, dict):
        raise BundleError("trust: missing")
    pem = (
        ca_override
        if ca_override is not None
        else str(trust.get("ca_certificates_pem", "")).encode()
    )
    certs = x509.load_pem_x509_certificates(pem)
    roots = [c for c in certs if c.issuer == c.subject]
    inter = [c for c in certs if c.issuer != c.subject]
    crls = load_pem_crls(str(trust.get("crls_pem", "")).encode())
    # An audit happens after the CRLs' next update; they still say what was revoked when.
    return TrustStore(roots, inter, crls, allow_stale_crls=True)


def load_bundle(text: bytes) -> dict[str, Any]:
    """Parse a bundle file; BundleError if it is not one."""
    try:
        bundle = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"the bundle is not JSON: {exc}") from exc
    if not isinstance(bundle, dict) or bundle.get("kind") != BUNDLE_KIND:
        raise BundleError(f"not a {BUNDLE_KIND} document")
    if bundle.get("version") != BUNDLE_VERSION:
        raise BundleError(f"unsupported bundle version {bundle.get('version')!r}")
    for name in ("batches", "records"):
        if not isinstance(bundle.get(name), list):
            raise BundleError(f"{name}: must be a list")
    return bundle


@dataclass(frozen=True)
class CheckedBatch:
    """A bundled batch that passed its checks: its entries (envelopes or events) and anchor;
    for event batches also each event's recomputed CBV 2.0 hash URI."""

    batch_id: str
    kind: str
    items: tuple[bytes, ...]
    anchor: dict[str, Any]
    event_hashes: tuple[str, ...] = ()


def check_batch_entry(entry: Any, ledger: _Ledger | None) -> CheckedBatch:
    """A batch entry after its offline (and, with a ledger, online) checks."""
    if not isinstance(entry, dict):
        raise BundleError("not an object")
    batch_id = str(entry.get("batch_id"))
    anchor = entry.get("anchor")
    if not isinstance(anchor, dict):
        raise BundleError("anchor missing")
    try:
        data = base64.b64decode(str(entry.get("object_base64")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BundleError(f"object_base64 is not base64: {exc}") from exc
    cid = str(entry.get("ipfs_cid"))
    if anchor.get("batch_id") != batch_id or anchor.get("ipfs_cid") != cid:
        raise BundleError("the anchor names another batch or CID")
    # Objects stored as one raw block have a CID we can recompute; bigger ones are DAGs.
    if cid.startswith("bafkrei") and raw_cid(data) != cid:
        raise BundleError(f"the object's bytes do not have CID {cid} (they give {raw_cid(data)})")
    if entry.get("kind") == "readings":
        try:
            decoded = decode_batch(data)
        except ReadingBatchFormatError as exc:
            raise BundleError(f"batch object: {exc}") from exc
        if decoded.batch_id != batch_id or decoded.root.hex() != anchor.get("root"):
            raise BundleError("the batch object's root is not the anchored root")
        if len(decoded.envelopes) != anchor.get("count"):
            raise BundleError("the batch object's count is not the anchored count")
        checked = CheckedBatch(batch_id, "readings", decoded.envelopes, anchor)
    elif entry.get("kind") == "events":
        try:
            events = decode_event_batch(data)
        except EventBatchFormatError as exc:
            raise BundleError(f"event batch object: {exc}") from exc
        if events.batch_id != batch_id or events.root != anchor.get("root"):
            raise BundleError("the event batch's root is not the anchored root")
        # Each event's leaf is its CBV 2.0 hash, recomputed from the event's bytes, so the root
        # follows from the object's content, not from hashes anyone supplied.
        try:
            hashes = tuple(event_hash(json.loads(e)) for e in events.events)
        except (ValueError, EPCISValidationError) as exc:
            raise BundleError(f"an event of the batch cannot be hashed: {exc}") from exc
        leaves = [bytes.fromhex(hash_hex(uri)) for uri in hashes]
        if MerkleTree(leaves).root.hex() != anchor.get("root"):
            raise BundleError("the events' CBV 2.0 hashes do not give the anchored root")
        checked = CheckedBatch(batch_id, "events", events.events, anchor, hashes)
    else:
        raise BundleError(f"unknown batch kind {entry.get('kind')!r}")
    if ledger is not None:
        try:
            live = json.loads(ledger.evaluate("GetAnchor", batch_id))
        except Exception as exc:  # any ledger failure is a failed check, reported with its text
            raise BundleError(f"ledger: GetAnchor failed: {exc}") from exc
        for name in ("root", "ipfs_cid", "tx_id", "count"):
            if live.get(name) != anchor.get(name):
                raise BundleError(
                    f"ledger: anchored {name} {live.get(name)!r} differs from the bundle's"
                )
    return checked


def verify_bundle(
    bundle: Mapping[str, Any], *, ledger: _Ledger | None = None, ca_bundle_pem: bytes | None = None
) -> BundleReport:
    """Check every batch and record of a bundle; each failure is reported with its reason.

    Offline (``ledger`` None): batch objects against their anchors (CID, root, count), each
    record's proof against its batch (leaf, Merkle path, root, transaction), reading signatures
    against the bundled device certificates and CA chain/CRLs, event hashes recomputed. With a
    ledger, each anchor is also re-read with GetAnchor and compared.
    """
    report = BundleReport()
    try:
        trust = _trust(bundle, ca_bundle_pem)
    except (BundleError, ValueError) as exc:
        report.failures.append(f"trust: {exc}")
        return report
    report.roots = [hashlib.sha256(r.public_bytes(Encoding.DER)).hexdigest() for r in trust.roots]
    directory = InMemoryDirectory()
    certs = bundle.get("device_certificates") or {}
    if isinstance(certs, dict):
        for fp, pem in certs.items():
            try:
                cert = x509.load_pem_x509_certificate(str(pem).encode())
            except ValueError as exc:
                report.failures.append(f"device certificate {fp}: not PEM: {exc}")
                continue
            directory.add(cert)
    objects: dict[str, CheckedBatch] = {}
    for i, entry in enumerate(bundle["batches"]):
        name = entry.get("batch_id") if isinstance(entry, dict) else i
        try:
            checked = check_batch_entry(entry, ledger)
        except BundleError as exc:
            report.failures.append(f"batch {name}: {exc}")
            continue
        objects[checked.batch_id] = checked
        report.batches_ok += 1
    for i, record in enumerate(bundle["records"]):
        name = record.get("id", i) if isinstance(record, dict) else i
        try:
            _check_record(record, objects, trust, directory)
        except BundleError as exc:
            report.failures.append(f"record {name}: {exc}")
            continue
        report.records_ok += 1
    return report


def _check_record(
    record: Any,
    objects: Mapping[str, CheckedBatch],
    trust: TrustStore,
    directory: InMemoryDirectory,
) -> None:
    if not isinstance(record, dict) or not isinstance(record.get("proof"), dict):
        raise BundleError("not a record with a proof")
    text = json.dumps(record["proof"])
    try:
        proof: Proof | EventProof = (
            EventProof.from_json(text)
            if record["proof"].get("kind") == EVENT_PROOF_KIND
            else Proof.from_json(text)
        )
    except ProofFormatError as exc:
        raise BundleError(f"proof: {exc}") from exc
    if proof.batch_id not in objects:
        raise BundleError(f"batch {proof.batch_id} is not in the bundle (or failed its checks)")
    batch = objects[proof.batch_id]
    for name in ("root", "ipfs_cid", "tx_id"):
        if getattr(proof, name) != batch.anchor.get(name):
            raise BundleError(f"the proof's {name} is not the anchor's")
    if not proof.check_path():
        raise BundleError("path: the leaf or audit path does not lead to the anchored root")
    if proof.index >= len(batch.items):
        raise BundleError("the proof's index is outside its batch")
    if isinstance(proof, EventProof):
        if batch.kind != "events":
            raise BundleError("an event proof into a readings batch")
        recomputed = batch.event_hashes[proof.index]
        if recomputed != proof.event_hash:
            raise BundleError(f"event-hash: the event hashes to {recomputed}, not the proof's")
        return
    if batch.kind != "readings":
        raise BundleError("a reading proof into an events batch")
    envelopes = batch.items
    envelope = envelopes[proof.index]
    if hashlib.sha256(envelope).hexdigest() != proof.reading_hash:
        raise BundleError("the envelope at the proof's index has another hash")
    try:
        verified = verify_envelope(envelope, trust, directory)
    except VerificationError as exc:
        raise BundleError(f"signature: {exc.reason}: {exc.detail}") from exc
    if verified.fingerprint != proof.device_certificate_sha256:
        raise BundleError("signature: signed by another certificate than the proof names")


def is_bundle(text: bytes) -> bool:
    """Whether a file claims to be an audit bundle (by its ``kind``), cheaply."""
    return f'"kind":"{BUNDLE_KIND}"'.encode() in text[:4096].replace(b" ", b"") or (
        f'"{BUNDLE_KIND}"'.encode() in text[:4096]
    )
