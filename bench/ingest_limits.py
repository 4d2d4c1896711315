"""What the machine can do at most for each stage of ingest, measured beside the pipeline.

    .venv/bin/python -m bench.ingest_limits [--devices 4] [--readings 5000] [--rows 20000]

Four ceilings, each with the same messages or rows the pipeline handles:
- ``openssl speed -seconds 2 ecdsap256``: OpenSSL's P-256 verifications/s on one core;
- ``cryptography``: P-256 verifications/s per core through the library the gateway uses, one
  process per core (processes, as the gateway scales), on a JWS signing input of the real size;
- the broker: signed envelopes pushed through Mosquitto by its own C clients (one
  ``mosquitto_pub -l`` per device, QoS 1, mutual TLS; one ``mosquitto_sub`` counting them), so
  no Python client limits the figure;
- PostgreSQL: binary ``COPY`` of reading rows into ``reading_keys`` and ``readings`` of a freshly
  migrated schema (every index and constraint of the real one), one transaction per 1,000 rows;
  beside it, the store's two paths on the same rows, each on a fresh schema: stored unbatched
  then every row updated by ``seal_batch`` (the former path), and stored into open batches of
  5,000 sealed by ``seal_open_batch`` (the gateway's path).
:func:`ratios` puts a pipeline figure against each. ``bench.ingest_bench`` runs these in the same
run as the gateways; run alone, this module writes ``bench/results/ingest_limits.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import secrets
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from bench._proc import cpu_and_rss
from bench.store_bench import bench_schema, bench_store, make_rows
from certs.broker import BrokerEndpoint, admit_gateway
from certs.pki import PKI
from ingest.store import _COPY_TYPES, _READING_COLUMNS, ReadingStore
from tracehub.config import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "ingest_limits.json"
_OPENSSL_LINE = re.compile(r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)")


def openssl_verify() -> dict[str, Any]:
    """``openssl speed -seconds 2 ecdsap256``: signatures and verifications per second, one core."""
    out = subprocess.run(
        ["openssl", "speed", "-seconds", "2", "ecdsap256"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    match = _OPENSSL_LINE.search(out)
    if match is None:
        raise RuntimeError(f"no ecdsap256 line in openssl speed output:\n{out}")
    return {"sign_per_s": float(match[1]), "verify_per_s_one_core": float(match[2])}


def _verify_loop(seconds: float) -> int:
    """Verifications of one P-256 signature over a ~600-byte input in ``seconds``."""
    key = ec.generate_private_key(ec.SECP256R1())
    message = secrets.token_bytes(600)
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        count += 50
    return count


def cryptography_verify(seconds: float = 2.0, processes: int = 2) -> dict[str, Any]:
    """P-256 verifications/s through ``cryptography``: one process, then ``processes`` at once."""
    one = _verify_loop(seconds) / seconds
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        pool.submit(_verify_loop, 0.1).result()  # started and imported before timing
        counts = list(pool.map(_verify_loop, [seconds] * processes))
    return {
        "verify_per_s_one_core": round(one),
        "processes": processes,
        "verify_per_s_all_processes": round(sum(counts) / seconds),
    }


def _tls_args(settings: Settings, cert_dir: Path) -> list[str]:
    return [
        "-h",
        settings.mqtt_host,
        "-p",
        str(settings.mqtt_tls_port),
        "--cafile",
        str(settings.pki_dir / "ca-bundle.pem"),
        "--cert",
        str(cert_dir / "cert.pem"),
        "--key",
        str(cert_dir / "key.pem"),
        "-V",
        "mqttv5",
        "-q",
        "1",
    ]


def broker_passthrough(
    settings: Settings, signed: dict[str, list[bytes]], broker_pid: int | None = None
) -> dict[str, Any]:
    """The signed envelopes through Mosquitto with its own C clients: msgs/s from the first
    publish to the subscriber's last message, and the broker's CPU per message."""
    total = sum(len(v) for v in signed.values())
    topics = [f"tracehub/v1/devices/{d}/readings" for d in signed]
    # A gateway identity of its own: the broker gives device topics to the `gateway` role only,
    # and takes the certificate's name as the client id (decision 0025).
    reader, _ = admit_gateway(PKI(settings.pki_dir), BrokerEndpoint.of(settings), "limits")
    sub_cmd = ["mosquitto_sub", *_tls_args(settings, settings.pki_dir / "services" / reader)]
    sub_cmd += ["-C", str(total), "-W", "90"]
    for topic in topics:
        sub_cmd += ["-t", topic]
    subscriber = subprocess.Popen(sub_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)  # subscribed before anything is published
    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        for device_id, envelopes in signed.items():
            path = Path(tmp) / f"{device_id}.lines"
            # A JWS compact envelope has no newline, so -l sends each line as one message.
            path.write_bytes(b"\n".join(envelopes) + b"\n")
            inputs.append((device_id, path))
        cpu0 = cpu_and_rss(broker_pid)[0] if broker_pid else None
        started = time.monotonic()
        publishers = []
        for device_id, path in inputs:
            cmd = ["mosquitto_pub", *_tls_args(settings, settings.pki_dir / "devices" / device_id)]
            topic = f"tracehub/v1/devices/{device_id}/readings"
            cmd += ["-i", f"limits-{uuid.uuid4().hex[:8]}", "-t", topic, "-l", "-M", "1000"]
            with path.open("rb") as stdin:
                publishers.append(subprocess.Popen(cmd, stdin=stdin, stderr=subprocess.PIPE))
        for publisher in publishers:
            publisher.wait(120)
        published = time.monotonic()
        subscriber.wait(120)
        done = time.monotonic()
        cpu1 = cpu_and_rss(broker_pid)[0] if broker_pid else None
    failed = [p.stderr.read().decode() for p in publishers if p.returncode and p.stderr]
    if subscriber.returncode != 0 or failed:
        detail = subscriber.stderr.read().decode() if subscriber.stderr else ""
        raise RuntimeError(f"mosquitto clients failed: {detail} {failed}")
    elapsed = done - started
    result: dict[str, Any] = {
        "messages": total,
        "publishers": len(signed),
        "published_per_s": round(total / (published - started)),
        "msgs_per_s": round(total / elapsed),
    }
    if cpu0 is not None and cpu1 is not None:
        result["broker_cpu_us_per_msg"] = round((cpu1 - cpu0) / total * 1e6, 1)
    return result


def postgres_copy(settings: Settings, rows: int, chunk: int = 1000) -> dict[str, Any]:
    """Binary COPY of ``rows`` readings into a fresh schema's reading_keys and readings, one
    committed transaction per ``chunk``; then the store's own path on another fresh schema."""
    data = make_rows(rows, 100, 600)
    keys_copy = "COPY reading_keys (device_id, seq, ts, reading_hash) FROM STDIN (FORMAT BINARY)"
    readings_copy = f"COPY readings ({_READING_COLUMNS}) FROM STDIN (FORMAT BINARY)"
    with bench_schema(settings.postgres_dsn, keep=False) as factory, factory() as conn:
        started = time.perf_counter()
        for i in range(0, rows, chunk):
            part = data[i : i + chunk]
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(keys_copy) as copy:
                    copy.set_types(["text", "int8", "timestamptz", "text"])
                    for r in part:
                        copy.write_row((r.device_id, r.seq, r.ts, r.reading_hash))
                with cur.copy(readings_copy) as copy:
                    copy.set_types(_COPY_TYPES)
                    for r in part:
                        copy.write_row(r.copy_row())
        copy_s = time.perf_counter() - started
    with bench_schema(settings.postgres_dsn, keep=False) as factory:
        store = bench_store(factory, make_rows(rows, 100, 600), chunk)
    store_us = 1e6 / store["store_verified"]["rows_per_second"]
    seal_us = 1e6 / store["seal_batch"]["rows_per_second"]
    with bench_schema(settings.postgres_dsn, keep=False) as factory:
        open_store_us, open_seal_us = _open_batch_path(factory, make_rows(rows, 100, 600), chunk)
    return {
        "rows": rows,
        "rows_per_transaction": chunk,
        "copy_per_s": round(rows / copy_s),
        "copy_us_per_reading": round(copy_s / rows * 1e6, 1),
        # Stored unbatched, then every row UPDATEd when its batch is sealed (seal_batch).
        "update_on_seal": {
            "store_us_per_reading": round(store_us, 1),
            "seal_us_per_reading": round(seal_us, 1),
            "per_s": round(1e6 / (store_us + seal_us)),
        },
        # Stored straight into the gateway's open batch, sealed from its leaves (what the
        # gateway does).
        "open_batch": {
            "store_us_per_reading": round(open_store_us, 1),
            "seal_us_per_reading": round(open_seal_us, 1),
            "per_s": round(1e6 / (open_store_us + open_seal_us)),
        },
    }


def _open_batch_path(
    factory: Any, rows: list[Any], chunk: int, batch_size: int = 5000
) -> tuple[float, float]:
    """µs per reading of store_verified into open batches of ``batch_size``, and of sealing."""
    store_s = seal_s = 0.0
    with ReadingStore(factory) as store:
        batch_id = f"bench-{uuid.uuid4().hex[:12]}"
        for i in range(0, len(rows), chunk):
            started = time.perf_counter()
            result = store.store_verified(rows[i : i + chunk], batch_into=batch_id)
            store_s += time.perf_counter() - started
            assert len(result.stored) == len(rows[i : i + chunk]) and result.batch_id
            if result.batch_size >= batch_size or i + chunk >= len(rows):
                started = time.perf_counter()
                assert store.seal_open_batch(batch_id) is not None
                seal_s += time.perf_counter() - started
                batch_id = f"bench-{uuid.uuid4().hex[:12]}"
    return store_s / len(rows) * 1e6, seal_s / len(rows) * 1e6


def measure(
    settings: Settings, signed: dict[str, list[bytes]], *, rows: int, broker_pid: int | None
) -> dict[str, Any]:
    """Every ceiling, printed as it is measured."""
    limits: dict[str, Any] = {}
    for name, run in (
        ("openssl", openssl_verify),
        ("cryptography", cryptography_verify),
        ("broker", lambda: broker_passthrough(settings, signed, broker_pid)),
        ("postgres", lambda: postgres_copy(settings, rows)),
    ):
        limits[name] = run()
        print(f"  limit {name}: {limits[name]}", flush=True)
    return limits


def ratios(stored_per_s: float, limits: dict[str, Any], cores: int = 2) -> dict[str, float]:
    """The pipeline's readings/s as a fraction of each ceiling (verification on all cores)."""
    return {
        "of_openssl_verify_all_cores": round(
            stored_per_s / (limits["openssl"]["verify_per_s_one_core"] * cores), 3
        ),
        "of_cryptography_verify_all_processes": round(
            stored_per_s / limits["cryptography"]["verify_per_s_all_processes"], 3
        ),
        "of_broker_passthrough": round(stored_per_s / limits["broker"]["msgs_per_s"], 3),
        "of_postgres_copy": round(stored_per_s / limits["postgres"]["copy_per_s"], 3),
        "of_postgres_store_path": round(
            stored_per_s / limits["postgres"]["open_batch"]["per_s"], 3
        ),
    }


def main() -> None:
    from bench.ingest_bench import _sign_all

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--readings", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    settings = Settings.from_env()
    broker_pid = int((settings.run_dir / "pids" / "mosquitto.pid").read_text())
    signed = _sign_all(settings, args.devices, args.readings)
    limits = measure(settings, signed, rows=args.rows, broker_pid=broker_pid)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(limits, indent=2))
    print(f"ingest limits: results in {RESULTS}")


if __name__ == "__main__":
    main()
