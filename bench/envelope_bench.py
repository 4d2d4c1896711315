"""Throughput of the reading envelope, in one process.

    .venv/bin/python -m bench.envelope_bench [--seconds 3] [--max-n 20000]

Measures deterministic signing, ``verify_envelope`` with a warm certificate cache and with a cold
one (CRLs replaced before every call), parsing alone, and a bare ECDSA P-256 verification for
comparison. Each measurement stops after ``--seconds``
or ``--max-n`` operations, whichever comes first. Prints a table and writes
``bench/results/envelope.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.support.pki import T0, TestPKI
from tracehub.envelope import parse_envelope, reading_hash, sign_reading
from tracehub.reading import GENESIS_PREV, Reading
from tracehub.verify import InMemoryDirectory, TrustStore, verify_envelope

RESULTS = Path(__file__).resolve().parent / "results" / "envelope.json"
DISTINCT = 1000  # distinct readings cycled through, so nothing is trivially repeated


def measure(op: Callable[[int], object], seconds: float, max_n: int) -> dict[str, float]:
    """Run ``op(i)`` until ``seconds`` pass or ``max_n`` calls are done."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while n < max_n:
        op(n)
        n += 1
        if n % 64 == 0 and time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    return {
        "n": n,
        "seconds": round(elapsed, 3),
        "per_second": round(n / elapsed, 1),
        "us_per_op": round(elapsed / n * 1e6, 2),
    }


def readings() -> list[Reading]:
    out, prev = [], GENESIS_PREV
    for seq in range(1, DISTINCT + 1):
        data = {"temperature_c": round(4 + seq % 40 / 10, 2), "humidity_pct": 50 + seq % 30}
        ts = T0 + timedelta(milliseconds=seq * 1000)
        r = Reading(device="bench-1", seq=seq, ts=ts, kind="environment", data=data, prev=prev)
        out.append(r)
        prev = "ab" * 32  # the chain itself is not what is measured
    return out


def run(seconds: float, max_n: int) -> dict[str, Any]:
    pki = TestPKI("Bench")
    device = pki.device("bench-1")
    trust = TrustStore(pki.roots, pki.intermediates, [pki.crl()])
    directory = InMemoryDirectory([device.cert])
    batch = readings()
    envelopes = [sign_reading(r, device.key, device.cert) for r in batch]
    for envelope in envelopes[:2]:  # warm the certificate cache
        verify_envelope(envelope, trust, directory)

    public_key = device.cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    raw = []
    for envelope in envelopes:
        signing_input, _, _ = envelope.rpartition(b".")
        sig = parse_envelope(envelope).signature
        der = encode_dss_signature(int.from_bytes(sig[:32]), int.from_bytes(sig[32:]))
        raw.append((der, signing_input))
    algorithm = ec.ECDSA(hashes.SHA256())

    def raw_verify(i: int) -> None:
        der, data = raw[i % DISTINCT]
        public_key.verify(der, data, algorithm)

    crls = list(trust.crls)

    def cold_verify(i: int) -> None:
        trust.replace_crls(crls)  # drops every cached certificate result
        verify_envelope(envelopes[i % DISTINCT], trust, directory)

    results = {
        "sign_reading (RFC 6979)": measure(
            lambda i: sign_reading(batch[i % DISTINCT], device.key, device.cert), seconds, max_n
        ),
        "verify_envelope (warm cache)": measure(
            lambda i: verify_envelope(envelopes[i % DISTINCT], trust, directory), seconds, max_n
        ),
        "verify_envelope (cold: replace_crls first)": measure(cold_verify, seconds, max_n),
        "parse_envelope only": measure(
            lambda i: parse_envelope(envelopes[i % DISTINCT]), seconds, max_n
        ),
        "reading_hash only": measure(
            lambda i: reading_hash(envelopes[i % DISTINCT]), seconds, max_n
        ),
        "raw ECDSA P-256 verify": measure(raw_verify, seconds, max_n),
    }
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cryptography": version("cryptography"),
        "joserfc": version("joserfc"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "envelope_bytes": len(envelopes[0]),
        "limits": {"seconds": seconds, "max_n": max_n},
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--max-n", type=int, default=20_000)
    args = parser.parse_args()
    report = run(args.seconds, args.max_n)
    width = max(map(len, report["results"]))
    print(f"{'operation':<{width}}  {'ops/s':>10}  {'µs/op':>8}  {'n':>6}")
    for name, r in report["results"].items():
        print(f"{name:<{width}}  {r['per_second']:>10,.0f}  {r['us_per_op']:>8.1f}  {r['n']:>6}")
    print(
        f"(envelope of {report['envelope_bytes']} bytes; Python {report['python']}, "
        f"cryptography {report['cryptography']}, joserfc {report['joserfc']})"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
