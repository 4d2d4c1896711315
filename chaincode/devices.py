"""Device registry: which certificate spoke for which device, and when.

Enrolment records a device certificate (the chaincode derives device id, fingerprint, issuer and
validity from the certificate itself, so the ledger cannot hold a mismatched pair); revocation
records reason and time. An auditor can then ask which certificate was valid for a device at any
moment.

Only the hub's registrar may write here: an admin identity (Fabric node OU ``admin``) of the hub's
organisation. The device CA certificate is recorded once (`SetDeviceCA`, at set-up), and
`EnrolDevice` accepts only a certificate that CA signed and that is valid now, so even the
registrar cannot enrol a certificate of its own making. A revocation takes the transaction's
time, the same on every peer and not the caller's choice.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from chaincode.base import (
    HUB_MSP,
    ChaincodeError,
    Function,
    dumps,
    expect_args,
    history,
    key,
    require_identity,
    tx_time,
)

DEVICE = "device"
CERTIFICATE = "devicecert"
DEVICE_CA = "deviceca"
# The revocation log: entry n (1, 2, ...) names the n-th certificate revoked, and the count key
# holds how many there are, so a reader asks for what came after the last entry it read.
REVOCATION = "revocation"
REVOCATION_COUNT = "revocationcount"
MAX_REVOCATIONS_PER_QUERY = 500
REGISTRAR_MSP = HUB_MSP
DEVICE_URI_PREFIX = "urn:tracehub:device:"


def _require_registrar(stub: Any, action: str) -> None:
    require_identity(stub, REGISTRAR_MSP, "admin", action)


def _load_pem(text: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(text.encode())
    except ValueError as exc:
        raise ChaincodeError(f"not a PEM certificate: {exc}") from exc


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


async def _device_ca(stub: Any) -> x509.Certificate:
    data = await stub.get_state(key(stub, DEVICE_CA, "current"))
    if not data:
        raise ChaincodeError("no device CA is recorded on the ledger (SetDeviceCA at set-up)")
    return _load_pem(json.loads(data)["certificate_pem"])


def _check_issued(certificate: x509.Certificate, ca: x509.Certificate, now: datetime) -> None:
    """Refuse a certificate the device CA did not sign, a CA, or one not valid at ``now``."""
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ChaincodeError(
            "certificate was not issued by the device CA recorded on the ledger"
        ) from exc
    if _is_ca(certificate):
        raise ChaincodeError("a CA certificate cannot be enrolled as a device")
    if not certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc:
        raise ChaincodeError(f"certificate is not valid at {_iso(now)}")


async def set_device_ca(stub: Any, args: list[str]) -> bytes:
    """SetDeviceCA(certificate_pem): record the device CA, once; the same CA again is a no-op."""
    expect_args(args, ("certificate_pem",))
    _require_registrar(stub, "record the device CA")
    ca = _load_pem(args[0])
    if not _is_ca(ca):
        raise ChaincodeError("the device CA certificate must be a CA (basicConstraints cA)")
    fingerprint = hashlib.sha256(ca.public_bytes(Encoding.DER)).hexdigest()
    ledger_key = key(stub, DEVICE_CA, "current")
    existing = await stub.get_state(ledger_key)
    if existing:
        if json.loads(existing)["fingerprint_sha256"] != fingerprint:
            raise ChaincodeError("a different device CA is already recorded on the ledger")
        return bytes(existing)
    record = {
        "certificate_pem": args[0],
        "fingerprint_sha256": fingerprint,
        "subject": ca.subject.rfc4514_string(),
        "recorded_at": tx_time(stub),
        "tx_id": stub.get_txid(),
    }
    await stub.put_state(ledger_key, dumps(record))
    return dumps(record)


async def get_device_ca(stub: Any, args: list[str]) -> bytes:
    """GetDeviceCA(): the recorded device CA, or an error when none is."""
    expect_args(args, ())
    data = await stub.get_state(key(stub, DEVICE_CA, "current"))
    if not data:
        raise ChaincodeError("no device CA is recorded on the ledger")
    return bytes(data)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ChaincodeError(f"not an RFC 3339 time: {text!r}") from exc
    if moment.tzinfo is None:
        raise ChaincodeError(f"time {text!r} has no time zone")
    return moment


def _device_id(certificate: x509.Certificate) -> str:
    try:
        uris = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound as exc:
        raise ChaincodeError("certificate has no subject alternative name") from exc
    ids = [uri.removeprefix(DEVICE_URI_PREFIX) for uri in uris if uri.startswith(DEVICE_URI_PREFIX)]
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(ids) != 1 or not common_names or common_names[0].value != ids[0]:
        raise ChaincodeError("certificate must name one device, in its URI SAN and its CN alike")
    return ids[0]


async def _load(stub: Any, ledger_key: str, what: str) -> dict[str, Any]:
    data = await stub.get_state(ledger_key)
    if not data:
        raise ChaincodeError(f"{what} not found")
    loaded: dict[str, Any] = json.loads(data)
    return loaded


async def enrol_device(stub: Any, args: list[str]) -> bytes:
    """EnrolDevice(certificate_pem): record a newly issued device certificate."""
    expect_args(args, ("certificate_pem",))
    _require_registrar(stub, "enrol devices")
    certificate = _load_pem(args[0])
    _check_issued(certificate, await _device_ca(stub), _parse_time(tx_time(stub)))
    device_id = _device_id(certificate)
    fingerprint = hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
    cert_key = key(stub, CERTIFICATE, fingerprint)
    if await stub.get_state(cert_key):
        raise ChaincodeError(f"certificate {fingerprint} is already enrolled")
    record = {
        "device_id": device_id,
        "fingerprint_sha256": fingerprint,
        "serial": format(certificate.serial_number, "x"),
        "issuer": certificate.issuer.rfc4514_string(),
        "not_before": _iso(certificate.not_valid_before_utc),
        "not_after": _iso(certificate.not_valid_after_utc),
        "certificate_pem": args[0],
        "status": "active",
        "enrolled_at": tx_time(stub),
        "enrol_tx": stub.get_txid(),
        "revoked_at": None,
        "revocation_reason": None,
        "revoke_tx": None,
    }
    device_key = key(stub, DEVICE, device_id)
    existing = await stub.get_state(device_key)
    device: dict[str, Any] = (
        json.loads(existing) if existing else {"device_id": device_id, "certificates": []}
    )
    device["certificates"].append(fingerprint)
    device["updated_at"] = tx_time(stub)
    await stub.put_state(cert_key, dumps(record))
    await stub.put_state(device_key, dumps(device))
    return dumps(record)


async def revoke_device(stub: Any, args: list[str]) -> bytes:
    """RevokeDevice(device_id, fingerprint, reason): record a revocation at the transaction's
    time.

    An empty fingerprint revokes every active certificate of the device. Revoking an already
    revoked certificate changes nothing, so a retried call is harmless.
    """
    expect_args(args, ("device_id", "fingerprint", "reason"))
    _require_registrar(stub, "revoke devices")
    device_id, fingerprint, reason = args
    revoked_time = _iso(_parse_time(tx_time(stub)))
    device = await _load(stub, key(stub, DEVICE, device_id), f"device {device_id}")
    targets = [fingerprint] if fingerprint else list(device["certificates"])
    changed = []
    for target in targets:
        if target not in device["certificates"]:
            raise ChaincodeError(f"certificate {target} does not belong to device {device_id}")
        cert_key = key(stub, CERTIFICATE, target)
        record = await _load(stub, cert_key, f"certificate {target}")
        if record["status"] == "revoked":
            continue
        record.update(
            status="revoked",
            revoked_at=revoked_time,
            revocation_reason=reason or "unspecified",
            revoke_tx=stub.get_txid(),
        )
        await stub.put_state(cert_key, dumps(record))
        changed.append(record)
    if changed:
        await _log_revocations(stub, changed)
    return dumps({"device_id": device_id, "revoked": [r["fingerprint_sha256"] for r in changed]})


async def _log_revocations(stub: Any, records: list[dict[str, Any]]) -> None:
    """Append each revoked certificate to the revocation log. The count is read and written
    by every revocation, so two in one block conflict (MVCC) and the second is refused: the
    registrar submits it again (revoking is idempotent). Revocations are rare; readers of the
    log then need no scan of the registry."""
    count = await _revocation_count(stub)
    for record in records:
        count += 1
        entry = {
            "n": count,
            "fingerprint_sha256": record["fingerprint_sha256"],
            "device_id": record["device_id"],
            "revoked_at": record["revoked_at"],
        }
        await stub.put_state(_revocation_key(stub, count), dumps(entry))
    await stub.put_state(key(stub, REVOCATION_COUNT, "all"), str(count).encode())


async def _revocation_count(stub: Any) -> int:
    return int(await stub.get_state(key(stub, REVOCATION_COUNT, "all")) or b"0")


def _revocation_key(stub: Any, n: int) -> str:
    return key(stub, REVOCATION, f"{n:012d}")


async def get_revocations_after(stub: Any, args: list[str]) -> bytes:
    """GetRevocationsAfter(n): the revocation log's entries after the n-th (n = -1: none, only
    the count), at most 500, oldest first, and the log's count. A gateway's registry cache asks
    this every few seconds instead of re-reading every certificate it holds."""
    expect_args(args, ("after",))
    try:
        after = int(args[0])
    except ValueError:
        raise ChaincodeError(f"after must be an integer, got {args[0]!r}") from None
    if after < -1:
        raise ChaincodeError(f"after must be -1 or more, got {after}")
    count = await _revocation_count(stub)
    entries = []
    if after >= 0:
        for n in range(after + 1, min(count, after + MAX_REVOCATIONS_PER_QUERY) + 1):
            entries.append(json.loads(await stub.get_state(_revocation_key(stub, n))))
    return dumps({"count": count, "revocations": entries})


async def _certificates(stub: Any, device: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        await _load(stub, key(stub, CERTIFICATE, fp), f"certificate {fp}")
        for fp in device["certificates"]
    ]


async def get_device(stub: Any, args: list[str]) -> bytes:
    """GetDevice(device_id): the device and every certificate it was ever enrolled with."""
    expect_args(args, ("device_id",))
    device = await _load(stub, key(stub, DEVICE, args[0]), f"device {args[0]}")
    device["certificates"] = await _certificates(stub, device)
    return dumps(device)


async def get_device_certificate(stub: Any, args: list[str]) -> bytes:
    """GetDeviceCertificate(fingerprint): one certificate's record, PEM included."""
    expect_args(args, ("fingerprint",))
    return dumps(await _load(stub, key(stub, CERTIFICATE, args[0]), f"certificate {args[0]}"))


MAX_CERTIFICATES_PER_QUERY = 500
_FINGERPRINT_HEX = frozenset("0123456789abcdef")


def _fingerprints(raw: str) -> list[str]:
    try:
        fingerprints = json.loads(raw)
    except ValueError:
        raise ChaincodeError("fingerprints must be a JSON array") from None
    if not isinstance(fingerprints, list) or not fingerprints:
        raise ChaincodeError("fingerprints must be a non-empty JSON array")
    if len(fingerprints) > MAX_CERTIFICATES_PER_QUERY:
        raise ChaincodeError(
            f"at most {MAX_CERTIFICATES_PER_QUERY} fingerprints a query, got {len(fingerprints)}"
        )
    for fp in fingerprints:
        if not (isinstance(fp, str) and len(fp) == 64 and _FINGERPRINT_HEX.issuperset(fp)):
            raise ChaincodeError(f"not a SHA-256 fingerprint in lowercase hex: {fp!r}")
    return list(dict.fromkeys(fingerprints))


async def get_device_certificates(stub: Any, args: list[str]) -> bytes:
    """GetDeviceCertificates(fingerprints): the records of up to 500 certificates at once (a
    JSON array of hex fingerprints), as an object by fingerprint, null for one never enrolled.
    A gateway re-reads the certificates of its active devices every few seconds: one query for
    them all instead of one each (each costs the peer and this service a few ms)."""
    expect_args(args, ("fingerprints",))
    records: dict[str, Any] = {}
    for fp in _fingerprints(args[0]):
        data = await stub.get_state(key(stub, CERTIFICATE, fp))
        records[fp] = json.loads(data) if data else None
    return dumps(records)


async def device_certificates_valid_at(stub: Any, args: list[str]) -> bytes:
    """DeviceCertificatesValidAt(device_id, time): fingerprints that could sign at that moment."""
    expect_args(args, ("device_id", "time"))
    moment = _parse_time(args[1])
    device = await _load(stub, key(stub, DEVICE, args[0]), f"device {args[0]}")
    valid = []
    for record in await _certificates(stub, device):
        in_validity = _parse_time(record["not_before"]) <= moment < _parse_time(record["not_after"])
        revoked_before = (
            record["revoked_at"] is not None and _parse_time(record["revoked_at"]) <= moment
        )
        if in_validity and not revoked_before:
            valid.append(record["fingerprint_sha256"])
    return dumps({"device_id": args[0], "time": _iso(moment), "valid": valid})


async def get_device_history(stub: Any, args: list[str]) -> bytes:
    """GetDeviceHistory(device_id): every committed change of the device and its certificates."""
    expect_args(args, ("device_id",))
    device_key = key(stub, DEVICE, args[0])
    device = await _load(stub, device_key, f"device {args[0]}")
    changes = {"device": await history(stub, device_key)}
    for fp in device["certificates"]:
        changes[fp] = await history(stub, key(stub, CERTIFICATE, fp))
    return dumps(changes)


FUNCTIONS: dict[str, Function] = {
    "SetDeviceCA": set_device_ca,
    "GetDeviceCA": get_device_ca,
    "EnrolDevice": enrol_device,
    "RevokeDevice": revoke_device,
    "GetDevice": get_device,
    "GetDeviceCertificate": get_device_certificate,
    "GetDeviceCertificates": get_device_certificates,
    "GetRevocationsAfter": get_revocations_after,
    "DeviceCertificatesValidAt": device_certificates_valid_at,
    "GetDeviceHistory": get_device_history,
}
