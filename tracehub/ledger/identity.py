"""Client identity (MSP id + X.509 certificate) and ECDSA signer for Fabric."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from fabric_protos.msp import identities_pb2 as _identities_pb2

identities_pb2: Any = _identities_pb2

#: Group order n of the curves Fabric's default crypto provider supports.
_CURVE_ORDERS: dict[str, int] = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
        "581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
}


@dataclass(frozen=True)
class Identity:
    """A Fabric client identity: MSP id and PEM-encoded X.509 certificate."""

    msp_id: str
    certificate: bytes
    _cert: x509.Certificate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.msp_id:
            raise ValueError("msp_id must not be empty")
        pem = self.certificate
        if isinstance(pem, str):
            pem = pem.encode()
            object.__setattr__(self, "certificate", pem)
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise ValueError(f"identity certificate for {self.msp_id} is not valid PEM") from exc
        object.__setattr__(self, "_cert", cert)

    @property
    def x509(self) -> x509.Certificate:
        """The parsed certificate."""
        return self._cert

    def serialize(self) -> bytes:
        """``msp.SerializedIdentity`` bytes: the proposal *creator*."""
        message = identities_pb2.SerializedIdentity(mspid=self.msp_id, id_bytes=self.certificate)
        return bytes(message.SerializeToString())


class Signer:
    """Signs SHA-256 digests with an ECDSA private key (DER output, low-S normalised).

    Fabric rejects signatures whose ``s`` is in the upper half of the curve order, so
    ``s`` is replaced by ``n - s`` when needed.
    """

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        curve = private_key.curve.name
        if curve not in _CURVE_ORDERS:
            raise ValueError(f"unsupported curve {curve}; Fabric uses P-256 or P-384")
        self._key = private_key
        self._order = _CURVE_ORDERS[curve]

    @classmethod
    def from_pem(cls, pem: bytes | str, password: bytes | None = None) -> Signer:
        """Load a PEM private key (PKCS#8 or SEC1 EC key)."""
        data = pem.encode() if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=password)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("private key is not an ECDSA key")
        return cls(key)

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """Public half of the signing key."""
        return self._key.public_key()

    def sign(self, digest: bytes) -> bytes:
        """Sign a SHA-256 ``digest``; returns a DER signature with low S."""
        if len(digest) != hashes.SHA256.digest_size:
            raise ValueError("digest must be a 32-byte SHA-256 hash")
        der = self._key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        return to_low_s(der, self._order)

    def matches(self, identity: Identity) -> bool:
        """Whether this key is the private half of ``identity``'s certificate."""
        cert_key = identity.x509.public_key()
        fmt = serialization.PublicFormat.SubjectPublicKeyInfo
        enc = serialization.Encoding.DER
        return bool(cert_key.public_bytes(enc, fmt) == self.public_key.public_bytes(enc, fmt))


def to_low_s(der_signature: bytes, order: int) -> bytes:
    """Return ``der_signature`` with ``s`` normalised to ``s <= order / 2``."""
    r, s = decode_dss_signature(der_signature)
    if s > order // 2:
        s = order - s
        return encode_dss_signature(r, s)
    return der_signature


def curve_order(curve_name: str) -> int:
    """Group order of a supported curve (``secp256r1``, ``secp384r1``)."""
    return _CURVE_ORDERS[curve_name]


def _resolve_msp_dir(path: Path) -> Path:
    if (path / "signcerts").is_dir():
        return path
    if (path / "msp" / "signcerts").is_dir():
        return path / "msp"
    raise FileNotFoundError(f"{path} is not an MSP directory (no signcerts/ found)")


def load_msp_identity(msp_dir: str | Path, msp_id: str) -> tuple[Identity, Signer]:
    """Load identity and signer from a cryptogen / fabric-ca MSP directory.

    ``msp_dir`` is the ``msp`` folder or its parent (e.g. ``users/User1@org1.../``).
    The certificate is the first ``signcerts/*.pem``; the key is the ``keystore/*_sk``
    file (or any keystore file) whose public key matches that certificate.
    """
    root = _resolve_msp_dir(Path(msp_dir))
    certs = sorted((root / "signcerts").glob("*.pem"))
    if not certs:
        raise FileNotFoundError(f"no certificate (*.pem) in {root / 'signcerts'}")
    identity = Identity(msp_id, certs[0].read_bytes())

    keystore = root / "keystore"
    candidates = sorted(keystore.glob("*_sk")) + sorted(
        p for p in keystore.glob("*") if p.is_file() and not p.name.endswith("_sk")
    )
    for candidate in candidates:
        try:
            signer = Signer.from_pem(candidate.read_bytes())
        except (ValueError, TypeError):
            continue
        if signer.matches(identity):
            return identity, signer
    raise FileNotFoundError(f"no private key in {keystore} matches certificate {certs[0].name}")
