"""End-to-end ingest throughput on the real stack, in one run.

    .venv/bin/python -m bench.ingest_bench [--devices 20] [--readings 1500] [--gateways 2]
                                           [--rates 5000,1500] [--baseline 200]
                                           [--limits-rows 20000] [--skip a,l,t,c2,c3,d]
                                           [--publisher bulk|burst|c|paho] [--no-warm-up]
                                           [--output bench/results/ingest.json]

Readings are signed beforehand (signing is the devices' cost, measured in envelope_bench), then
published with QoS 1 by `--devices` MQTT clients, each over its own mutually authenticated TLS
connection, as fast as the broker takes them, or at a steady offered rate. The simulated devices
share the two cores with the pipeline, so their CPU per message is reported beside it and kept
small: by default (`bulk`, bench/bulk_publisher.py) every device's PUBLISH packets are encoded
beforehand and written from this process, 9-13 µs a message flat out; `--publisher burst` has
each device write 50 at a time, as an edge agent flushing its spool does, which the broker deals
alternately to two gateways (every chain link crosses between them: the store's dearest case);
`--publisher c` runs one Mosquitto C client per device (`mosquitto_pub -l`, fed line by line,
16-46 µs a message; the figures of 2026-12-04 and 12-05 before 04:30 were measured that way);
`--publisher paho` publishes from two processes of paho clients, each subscribed to its
device's acknowledgement topic as an edge agent is (the figures before 2026-12-04).
(a) broker pass-through: a trivial subscriber counts the messages;
(b) the verify ceiling of one process (verify_envelope, warm cache);
(c) `--gateways` gateway processes on one shared subscription (c1 flat out, c2 at each of `--rates`,
    c3 a single gateway flat out): readings/s verified + stored (from the first publish to the
    poll that sees the last one stored), time until all are batched to IPFS and anchored,
    p50/p95 latency publish→queryable and publish→anchored (approximated from the order of
    arrival: the i-th published reading counts as queryable when i readings are stored),
    CPU and RSS of each gateway, the broker, peers and PostgreSQL, ledger transactions used.
    Latency is only meaningful at a rate the pipeline sustains (c2): flat out, a backlog builds
    by construction and latency measures the queue;
    each run first sends every device's first reading through, anchored, outside the figures
    (the gateways' first look-up of each device on the ledger is a start-up cost; `--no-warm-up`
    measures from cold);
(d) the naive baseline: one Fabric transaction per reading (8 concurrent submitters);
(l) the machine's limits in the same run (bench/ingest_limits.py: OpenSSL and `cryptography`
    P-256 verify rates, Mosquitto pass-through with its own C clients, PostgreSQL COPY into the
    real schema) and run (c1)'s readings/s as a fraction of each;
(t) Telegraf, the user's obvious alternative (bench/telegraf_peer.py), storing run (c1)'s messages
    again, published the same way, without checking or anchoring them: its messages/s and CPU per
    message beside (c1)'s, and their ratio. Needs `.bin/telegraf` (network/build-telegraf.sh;
    `make bench` builds it); `--skip t` runs without it.
Bounded in count and time; writes bench/results/ingest.json (or `--output`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import resource
import signal
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from bench import ingest_limits
from bench._proc import children_cpu_since, cpu_and_rss, own_cpu_seconds, thread_cpu_seconds
from bench.bulk_publisher import BURST_SLICE, FLAT_OUT_SLICE, publish_bulk
from bench.telegraf_peer import TELEGRAF, bench_telegraf
from certs.broker import BrokerEndpoint, admit_gateway
from certs.enrolment import enrol_simulated_devices
from certs.pki import PKI
from tests.support.mqtt import close, connect, device_client, end_session, gateway_client
from tracehub import db
from tracehub.acks import ack_topic
from tracehub.config import PROJECT_DIR, Settings
from tracehub.envelope import reading_hash, sign_reading
from tracehub.ledger.local import connect_org
from tracehub.reading import GENESIS_PREV, Reading
from tracehub.verify import InMemoryDirectory, TrustStore, verify_envelope

RESULTS = Path(__file__).resolve().parent / "results" / "ingest.json"


def _count(conn: Any, sql: str, *params: object) -> int:
    row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def _anchored(conn: Any, devices: list[str]) -> int:
    """How many readings of these devices are in anchored batches, counted in full."""
    return _count(
        conn,
        "select count(*) from readings r join batches b using (batch_id)"
        " where r.device_id = any(%s) and b.state = 'anchored'",
        devices,
    )


def _sign_all(settings: Settings, devices: int, readings: int) -> dict[str, list[bytes]]:
    pki = PKI(settings.pki_dir)
    signed: dict[str, list[bytes]] = {}
    enrolled = [f"bench-{uuid.uuid4().hex[:10]}" for _ in range(devices)]
    # On the ledger too: the gateway accepts only devices enrolled there.
    enrol_simulated_devices(pki, settings.fabric, enrolled)
    # After enrolling, which takes a while on a busy machine: every reading is stamped after
    # every certificate's notBefore.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    for device_id in enrolled:
        _, key_path = pki.device_paths(device_id)
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = pki.device(device_id)[0].certificate
        prev, envelopes = GENESIS_PREV, []
        for seq in range(1, readings + 1):
            reading = Reading(
                device=device_id,
                seq=seq,
                ts=start + timedelta(milliseconds=seq * 10),
                kind="environment",
                data={"temperature_c": 4.0 + seq % 40 / 10, "humidity_pct": 55.0},
                prev=prev,
            )
            envelope = sign_reading(reading, key, cert)  # type: ignore[arg-type]
            envelopes.append(envelope)
            prev = reading_hash(envelope)
        signed[device_id] = envelopes
    time.sleep(6)  # certificates valid from a whole second; readings stamped after it
    return signed


def _publish_part(job: tuple[dict[str, list[bytes]], float | None]) -> list[float]:
    """One publisher process: its devices round-robin; publish time of each message in order.

    With a rate (messages/s for this process), message k waits until k/rate after the first,
    so the offered load is steady instead of a flood that only measures backlog.
    """
    signed, rate = job
    settings = Settings.from_env()
    clients = []
    for device_id in signed:
        client = device_client(settings, device_id)
        client.max_inflight_messages_set(1000)
        assert connect(client, settings), device_id
        client.subscribe(ack_topic(device_id), qos=1)
        clients.append((device_id, client))
    times: list[float] = []
    infos = []
    first = time.monotonic()
    for i in range(max(len(v) for v in signed.values())):
        for device_id, client in clients:
            envelopes = signed[device_id]
            if i < len(envelopes):
                if rate:
                    delay = first + len(times) / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                topic = f"tracehub/v1/devices/{device_id}/readings"
                infos.append(client.publish(topic, envelopes[i], qos=1))
                times.append(time.monotonic())  # CLOCK_MONOTONIC: comparable across processes
    for info in infos:
        info.wait_for_publish(60)
    for _, client in clients:
        close(client)
    return times


PUBLISHERS = ("bulk", "burst", "c", "paho")


def _publish(
    settings: Settings,
    signed: dict[str, list[bytes]],
    processes: int = 2,
    rate: float | None = None,
    publisher: str = "bulk",
) -> list[float]:
    """Publish every envelope, the devices round-robin, as fast as possible or at `rate`
    messages/s in all; the time each message was published (or handed to its client), in order.

    ``c``: one Mosquitto C client per device (:func:`_publish_c`). ``paho``: the devices'
    Python clients, from `processes` processes (one tops out near 2,000/s), which cost more CPU
    per message than a gateway's broker does, on the cores the pipeline runs on.
    """
    if publisher in ("bulk", "burst"):
        burst = FLAT_OUT_SLICE if publisher == "bulk" else BURST_SLICE
        return publish_bulk(settings, signed, rate, burst=burst)
    if publisher == "c":
        return _publish_c(settings, signed, rate)
    devices = list(signed)
    parts = [{d: signed[d] for d in devices[i::processes]} for i in range(processes)]
    context = multiprocessing.get_context("spawn")
    share = rate / processes if rate else None
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        results = list(pool.map(_publish_part, [(p, share) for p in parts if p]))
    return sorted(t for part in results for t in part)


def _publish_c(
    settings: Settings, signed: dict[str, list[bytes]], rate: float | None
) -> list[float]:
    """One ``mosquitto_pub -l`` per device (QoS 1, mutual TLS with the device's certificate, as
    the limits' broker pass-through), fed its envelopes line by line from here (a compact JWS
    has no newline). A message's time is when its line went down the client's pipe: at a steady
    rate the pipes stay empty, so that is when it is published; flat out a full pipe (64 KiB,
    some 90 envelopes) makes the time up to that many messages early, which can only make a
    latency look longer. The devices' acknowledgements then go to no subscriber."""
    clients: dict[str, subprocess.Popen[bytes]] = {}
    for device_id in signed:
        tls = ingest_limits._tls_args(settings, settings.pki_dir / "devices" / device_id)
        topic = f"tracehub/v1/devices/{device_id}/readings"
        clients[device_id] = subprocess.Popen(
            ["mosquitto_pub", *tls, "-t", topic, "-l", "-M", "1000"],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    time.sleep(1)  # connected: the first lines are not held up by the TLS handshakes
    pipes = {d: c.stdin for d, c in clients.items() if c.stdin is not None}
    times: list[float] = []
    first = time.monotonic()
    try:
        for i in range(max(len(v) for v in signed.values())):
            for device_id, envelopes in signed.items():
                if i >= len(envelopes):
                    continue
                if rate:
                    # Ahead of the rate by a millisecond or more: wait (sleeping per message would
                    # cost more than the message).
                    ahead = first + len(times) / rate - time.monotonic()
                    if ahead >= 0.001:
                        time.sleep(ahead)
                pipes[device_id].write(envelopes[i] + b"\n")
                pipes[device_id].flush()
                times.append(time.monotonic())
    finally:
        for pipe in pipes.values():
            pipe.close()  # end of input: each client sends what it holds, then disconnects
        for client in clients.values():
            client.wait(120)
    failed = [c.stderr.read().decode() for c in clients.values() if c.returncode and c.stderr]
    if failed:
        raise RuntimeError(f"mosquitto_pub failed: {failed}")
    return times


def bench_broker(settings: Settings, devices: int, readings: int) -> dict[str, Any]:
    signed = _sign_all(settings, devices, readings)
    total = devices * readings
    got: queue.Queue[float] = queue.Queue()
    subscriber = gateway_client(settings)
    subscriber.on_message = lambda c, u, m: got.put(time.monotonic())
    assert connect(subscriber, settings)
    subscriber.subscribe("tracehub/v1/devices/+/readings", qos=1)
    time.sleep(1)
    started = time.monotonic()
    _publish(settings, signed)
    arrivals: list[float] = []
    deadline = time.monotonic() + 120
    while len(arrivals) < total and time.monotonic() < deadline:
        try:
            arrivals.append(got.get(timeout=1))
        except queue.Empty:
            continue
    close(subscriber)
    elapsed = (arrivals[-1] if arrivals else time.monotonic()) - started
    return {
        "messages": total,
        "received": len(arrivals),
        "msgs_per_s": round(len(arrivals) / elapsed),
    }


def bench_verify(settings: Settings, signed: dict[str, list[bytes]]) -> dict[str, Any]:
    pki = PKI(settings.pki_dir)
    trust = TrustStore.from_pem_files(pki.ca_bundle_path, pki.crl_path)
    directory = InMemoryDirectory([pki.device(d)[0].certificate for d in signed])
    envelopes = [e for batch in signed.values() for e in batch][:5000]
    started = time.perf_counter()
    for envelope in envelopes:
        verify_envelope(envelope, trust, directory)
    return {
        "verified": len(envelopes),
        "per_s": round(len(envelopes) / (time.perf_counter() - started)),
    }


class StoredCounter:
    """How many readings of these (fresh) devices are stored, read incrementally: a count of
    every row each tenth of a second grows with the rows (20 ms a poll at 30,000) and took
    CPU from the pipeline on the same cores. Each poll reads only the keys above each device's
    contiguous prefix of sequence numbers (those already seen past a hole included)."""

    def __init__(self, devices: list[str]) -> None:
        self._devices = devices
        self._prefix = dict.fromkeys(devices, 0)  # seqs 1..prefix are all stored
        self._beyond: dict[str, set[int]] = {d: set() for d in devices}

    def poll(self, conn: Any) -> int:
        rows = conn.execute(
            "SELECT k.device_id, k.seq FROM unnest(%s::text[], %s::int8[]) AS u(device_id, low)"
            " JOIN reading_keys k ON k.device_id = u.device_id AND k.seq > u.low",
            (self._devices, [self._prefix[d] for d in self._devices]),
        ).fetchall()
        for device_id, seq in rows:
            self._beyond[device_id].add(seq)
        for device_id, beyond in self._beyond.items():
            while self._prefix[device_id] + 1 in beyond:
                self._prefix[device_id] += 1
                beyond.discard(self._prefix[device_id])
        return sum(self._prefix.values()) + sum(map(len, self._beyond.values()))


class AnchoredCounter:
    """How many readings of these devices are in anchored batches, read incrementally: each
    batch anchored since the counter was made is counted once (its bench readings, by the
    batch index), instead of joining every reading to its batch at every poll."""

    def __init__(self, devices: list[str], conn: Any) -> None:
        self._devices = devices
        self._since = conn.execute("SELECT now()").fetchone()[0]
        self._counted: dict[str, int] = {}

    def poll(self, conn: Any) -> int:
        fresh = conn.execute(
            "SELECT batch_id FROM batches WHERE state = 'anchored' AND anchored_at >= %s"
            " AND batch_id <> ALL(%s)",
            (self._since, list(self._counted)),
        ).fetchall()
        for (batch_id,) in fresh:
            self._counted[batch_id] = _count(
                conn,
                "SELECT count(*) FROM readings WHERE batch_id = %s AND device_id = ANY(%s)",
                batch_id,
                self._devices,
            )
        return sum(self._counted.values())


def bench_gateway(
    settings: Settings,
    signed: dict[str, list[bytes]],
    *,
    gateways: int = 2,
    rate: float | None = None,
    watch: Callable[[list[int]], Callable[[], None]] | None = None,
    publisher: str = "bulk",
    gateway_tree: Path = PROJECT_DIR,
    warm_up: bool = True,
) -> dict[str, Any]:
    """`gateways` gateway processes on one shared subscription; publishing flat out, or at
    `rate` readings/s, with `publisher` (:func:`_publish`). `watch` is given the gateways' pids
    once they are subscribed and returns what to call when every reading is anchored (a
    profiler's start and stop). `gateway_tree`: the checkout whose gateway runs (another
    commit's, against this stack, for a before/after in one sitting). With `warm_up`, each
    device's first reading goes through the pipeline, anchored, before the measured window
    (:func:`_warm_up`), and the figures are of the others."""
    # Only when it leaves each device readings to measure.
    warm_up = warm_up and all(len(v) > 1 for v in signed.values())
    firsts = {d: v[:1] for d, v in signed.items()} if warm_up else {}
    window = {d: v[len(firsts.get(d, ())) :] for d, v in signed.items()}
    warm = sum(len(v) for v in firsts.values())
    total = sum(len(v) for v in window.values())
    devices = list(signed)
    group = f"bench{uuid.uuid4().hex[:6]}"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no results folder
    log = (RESULTS.parent / "ingest-gateway.log").open("ab")
    # Read before any gateway starts: a component being restarted must not leave them running.
    run = settings.run_dir / "pids"
    components = {
        name: int((run / f"{name}.pid").read_text())
        for name in ("mosquitto", "postgres", "peer0.org1", "peer0.org2", "orderer")
    }
    # The ha topology's other nodes (network/stack.sh), Kubo (what replication costs) and the
    # chaincode service (what the registry look-ups and anchors cost).
    for name in ("orderer2", "orderer3", "peer1.org1", "kubo", "kubo2", "chaincode"):
        if (run / f"{name}.pid").exists():
            components[name] = int((run / f"{name}.pid").read_text())
    names = [f"bench-{uuid.uuid4().hex[:6]}" for _ in range(gateways)]
    # Each process has broker identities of its own.
    consumers = [
        admit_gateway(PKI(settings.pki_dir), BrokerEndpoint.of(settings), n)[0] for n in names
    ]
    processes = [
        subprocess.Popen(
            [
                str(gateway_tree / ".venv/bin/python"),
                "-m",
                "gateway",
                "--name",
                name,
                "--group",
                group,
                "--session-expiry",
                "120",
                "--log-level",
                "WARNING",
            ],
            cwd=gateway_tree,
            # This stack, whichever checkout's code runs against it.
            env={**os.environ, "TRACEHUB_RUN": str(settings.run_dir)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for name in names
    ]
    for number, process in enumerate(processes, 1):
        components[f"gateway-{number}"] = process.pid
    stored_at: list[tuple[float, int]] = []
    anchored_at: list[tuple[float, int]] = []
    stop = threading.Event()

    poll_cpu: list[float] = []
    poll_backend: set[int] = set()
    polled, measured = threading.Event(), threading.Event()

    def poll() -> None:
        with db.connect(settings.postgres_dsn, autocommit=True) as conn:
            backend = conn.info.backend_pid
            poll_backend.add(backend)
            try:
                poll_until_anchored(conn)
            finally:
                # The counting is the bench's, not the pipeline's: its backend's CPU is taken
                # out of PostgreSQL's figure (it grows with the rows counted).
                poll_cpu.append(own_cpu_seconds(backend))
                polled.set()
                # Connected until the CPU is read: a server process that has just exited
                # shows its CPU neither in its own /proc entry nor in the postmaster's until
                # the postmaster reaps it, and the figure came out short by it now and then.
                measured.wait(30)

    def poll_until_anchored(conn: Any) -> None:
        stored_count, anchored_count = StoredCounter(devices), AnchoredCounter(devices, conn)
        while not stop.is_set():
            now = time.monotonic()
            stored = stored_count.poll(conn) - warm  # the warm-up's, counted from seq 1
            anchored = anchored_count.poll(conn)
            stored_at.append((now, stored))
            anchored_at.append((now, anchored))
            if anchored >= total:
                return
            time.sleep(0.1)

    def require_running() -> None:
        # A gateway that cannot start (a migration not applied, a refused identity) stores
        # nothing: say so at once rather than after the wait for the anchors times out.
        gone = [
            (n, p.returncode) for n, p in zip(names, processes, strict=True) if p.poll() is not None
        ]
        if gone:
            stop.set()
            raise RuntimeError(f"gateway(s) exited during the run: {gone}; see {log.name}")

    try:
        time.sleep(3)  # subscribed
        require_running()
        warmed_in = _warm_up(settings, firsts, publisher, require_running) if firsts else None
        unwatch = watch([p.pid for p in processes]) if watch else None
        cpu0 = {name: cpu_and_rss(pid)[0] for name, pid in components.items()}
        threads0 = [thread_cpu_seconds(p.pid) for p in processes]
        backends0 = _postgres_processes_cpu(settings, names)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        started = time.monotonic()
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        publishing0 = time.thread_time()
        publish_times = _publish(settings, window, rate=rate, publisher=publisher)
        # The publishers have all exited; the gateways have not. This thread's part: the
        # bulk publisher's work, or the lines written down the C clients' pipes.
        publishers_cpu = children_cpu_since(children0) + time.thread_time() - publishing0
        deadline = time.monotonic() + 300
        while not polled.wait(1) and time.monotonic() < deadline:
            require_running()
        stop.set()
        wall = time.monotonic() - started
        usage = {name: cpu_and_rss(pid) for name, pid in components.items()}
        threads = [thread_cpu_seconds(p.pid) for p in processes]
        backends = _postgres_processes_cpu(settings, names)
        measured.set()
        poller.join(30)
        if poll_cpu:
            cpu, rss = usage["postgres"]
            usage["postgres"] = (cpu - poll_cpu[0], rss)
        if unwatch:
            unwatch()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)
        for consumer in consumers:
            end_session(settings, consumer)
        log.close()

    def latencies(series: list[tuple[float, int]]) -> dict[str, float | None]:
        values, j = [], 0
        for i, published in enumerate(publish_times):
            while j < len(series) and series[j][1] < i + 1:
                j += 1
            if j < len(series):
                values.append(series[j][0] - published)
        if not values:
            return {"p50_s": None, "p95_s": None}
        values.sort()
        return {
            "p50_s": round(statistics.median(values), 3),
            "p95_s": round(values[int(len(values) * 0.95) - 1], 3),
        }

    # Throughput counts from the first publish (not from starting the publisher processes)
    # to the poll that saw every reading stored.
    first_publish = publish_times[0]
    postgres_loops, postgres_others = _postgres_by_role(
        backends0, backends, usage["postgres"][0] - cpu0["postgres"], total, poll_backend
    )
    all_stored = next((t for t, n in stored_at if n >= total), None)
    with db.connect(settings.postgres_dsn) as conn:
        transactions = _count(
            conn,
            "select count(distinct batch_id) from readings where device_id = any(%s) and seq > %s",
            devices,
            1 if firsts else 0,
        )
        # How often a device's next reading reached the store before the one before it (mostly:
        # the two went to different gateways): each such jump logs a gap, filled a moment later.
        gaps_logged = _count(
            conn, "select count(*) from chain_gaps where device_id = any(%s)", devices
        )
        # The incremental counters, checked once against plain counts.
        if anchored_at and anchored_at[-1][1] >= total:
            exact = (
                _count(conn, "select count(*) from readings where device_id = any(%s)", devices),
                _anchored(conn, devices),
            )
            if exact != (total + warm, total + warm) or anchored_at[-1][1] != total:
                raise RuntimeError(f"counters saw {anchored_at[-1][1]} of {total}, exact {exact}")
    return {
        "readings": total,
        "warm_up_s": None if warmed_in is None else round(warmed_in, 2),
        "gateways": gateways,
        "offered_per_s": rate or "flat out",
        "published_per_s": round(total / (publish_times[-1] - first_publish)),
        "stored_per_s": round(total / (all_stored - first_publish)) if all_stored else None,
        "anchored_all_in_s": round(wall, 2),
        "publish_to_queryable": latencies(stored_at),
        "publish_to_anchored": latencies(anchored_at),
        "ledger_transactions": transactions,
        "chain_gaps_logged": gaps_logged,
        "readings_per_transaction": round(total / transactions) if transactions else None,
        "cpu_percent": {n: round((usage[n][0] - cpu0[n]) / wall * 100, 1) for n in usage},
        # CPU each component spends per reading: on 2 cores, 2 s of CPU per second is all
        # there is, so 2e6 / (sum of these) bounds readings/s whatever the parallelism.
        "cpu_us_per_reading": {n: round((usage[n][0] - cpu0[n]) / total * 1e6) for n in usage},
        "bench_poll_us_per_reading": round(poll_cpu[0] / total * 1e6) if poll_cpu else None,
        # The simulated devices share the two cores too (not in the ceiling below).
        "publisher": publisher,
        "publishers_us_per_reading": round(publishers_cpu / total * 1e6),
        # Both gateways together, by thread (gateway.service names them for the OS).
        "gateway_threads_us_per_reading": _per_reading_by_name(threads0, threads, total),
        # PostgreSQL's server processes working for each gateway loop (by application_name),
        # both gateways together; then the rest of PostgreSQL's figure, by what it works for:
        # its own background work (WAL writer, checkpointer, autovacuum) and other clients.
        "postgres_by_gateway_loop_us_per_reading": postgres_loops,
        "postgres_others_us_per_reading": postgres_others,
        "two_core_ceiling_per_s": round(
            2e6 / (sum(usage[n][0] - cpu0[n] for n in usage) / total * 1e6)
        ),
        "rss_mib": {n: round(usage[n][1], 1) for n in usage},
    }


def _warm_up(
    settings: Settings,
    firsts: dict[str, list[bytes]],
    publisher: str,
    require_running: Callable[[], None],
) -> float:
    """Publish `firsts` and wait until all are anchored; the seconds it took.

    The gateways look each device up on the ledger's registry when its first reading comes
    (an Evaluate through the peer and the chaincode, per gateway and device, cached after):
    a start-up cost, which in a measured window of 30,000 readings from 20 devices cost the
    peers and the chaincode about as much as that window's anchors. The figures are of a
    pipeline running, so it is paid here, outside them; `--no-warm-up` puts it back in."""
    started = time.monotonic()
    _publish(settings, firsts, publisher=publisher)
    devices, expected = list(firsts), sum(len(v) for v in firsts.values())
    with db.connect(settings.postgres_dsn, autocommit=True) as conn:
        while _anchored(conn, devices) < expected:
            require_running()
            if time.monotonic() - started > 120:
                raise RuntimeError(f"the warm-up's {expected} readings not anchored in 120 s")
            time.sleep(0.2)
    return time.monotonic() - started


def _postgres_processes_cpu(
    settings: Settings, gateways: list[str]
) -> dict[int, tuple[str, float]]:
    """PostgreSQL's server processes now: pid → (what it works for, CPU seconds). A gateway's
    connection is named by its loop (the gateway names its connections "gateway <name> <loop>"),
    a client's by its application (or user) name, a background process by its type (WAL writer,
    checkpointer, autovacuum worker ...)."""
    with db.connect(settings.postgres_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, backend_type, application_name, usename FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid()"
        ).fetchall()
    processes: dict[int, tuple[str, float]] = {}
    for pid, kind, name, user in rows:
        words = (name or "").split(" ")
        if len(words) == 3 and words[0] == "gateway" and words[1] in gateways:
            role = f"gateway {words[2]}"
        elif kind == "client backend":
            role = f"client {name or user}"
        else:
            role = kind
        try:
            processes[pid] = (role, own_cpu_seconds(pid))
        except OSError:
            continue  # exited meanwhile
    return processes


def _postgres_by_role(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    total_cpu: float,
    readings: int,
    leave_out: set[int],
) -> tuple[dict[str, int], dict[str, int]]:
    """µs of PostgreSQL CPU per reading, (by gateway loop, by everything else), between two
    snapshots. A process that ended between them (an autovacuum worker, mostly) is not in the
    second: what `total_cpu` (the whole server's, from its process tree) has beyond the
    processes seen is put under "ended in the window". `leave_out`: the bench's own backends."""
    spent: dict[str, float] = {}
    for pid, (role, cpu) in after.items():
        if pid not in leave_out:
            spent[role] = spent.get(role, 0.0) + cpu - before.get(pid, (role, 0.0))[1]
    spent["ended in the window"] = max(0.0, total_cpu - sum(spent.values()))
    ordered = sorted(spent.items(), key=lambda item: -item[1])
    loops = {
        r.removeprefix("gateway "): round(c / readings * 1e6)
        for r, c in ordered
        if r.startswith("gateway ")
    }
    others = {r: round(c / readings * 1e6) for r, c in ordered if not r.startswith("gateway ")}
    return loops, others


def _per_reading_by_name(
    before: list[dict[str, float]], after: list[dict[str, float]], total: int
) -> dict[str, int]:
    """µs of CPU per reading of each name (a thread's, a loop's), summed over the snapshots'
    processes, largest first."""
    spent: dict[str, float] = {}
    for start, end in zip(before, after, strict=True):
        for name, cpu in end.items():
            spent[name] = spent.get(name, 0.0) + cpu - start.get(name, 0.0)
    ordered = sorted(spent.items(), key=lambda item: -item[1])
    return {name: round(cpu / total * 1e6) for name, cpu in ordered}


def bench_baseline(settings: Settings, count: int) -> dict[str, Any]:
    with connect_org(settings.fabric, 1) as gateway:
        contract = gateway.get_network(settings.fabric.channel).get_contract(
            settings.fabric.chaincode
        )
        ids = [f"baseline-{uuid.uuid4().hex}" for _ in range(count)]
        work: queue.Queue[str] = queue.Queue()
        for record_id in ids:
            work.put(record_id)

        def submitter() -> None:
            while True:
                try:
                    record_id = work.get_nowait()
                except queue.Empty:
                    return
                contract.submit("PutRecord", record_id, '{"reading":"one per transaction"}')

        started = time.monotonic()
        threads = [threading.Thread(target=submitter) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        elapsed = time.monotonic() - started
    return {"transactions": count, "readings_per_s": round(count / elapsed, 1)}


def telegraf_ratios(gateway: dict[str, Any], telegraf: dict[str, Any]) -> dict[str, Any]:
    """TraceHub's run beside Telegraf's on the same messages: the throughput ratio, and CPU per
    message of the consumer (every gateway process together), PostgreSQL and the broker."""
    ours, theirs = gateway["stored_per_s"], telegraf["stored_per_s"]
    cpu, peer_cpu = gateway["cpu_us_per_reading"], telegraf["cpu_us_per_message"]
    gateways = sum(v for k, v in cpu.items() if k.startswith("gateway-"))
    return {
        "stored_per_s": round(ours / theirs, 3) if ours and theirs else None,
        "consumer_us_per_message": {"tracehub": gateways, "telegraf": peer_cpu["telegraf"]},
        "postgres_us_per_message": {"tracehub": cpu["postgres"], "telegraf": peer_cpu["postgres"]},
        "mosquitto_us_per_message": {
            "tracehub": cpu["mosquitto"],
            "telegraf": peer_cpu["mosquitto"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--readings", type=int, default=1500)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument(
        "--rates", default="5000,1500", help="steady offered loads of run (c2), comma-separated"
    )
    parser.add_argument("--baseline", type=int, default=200)
    parser.add_argument(
        "--limits-rows", type=int, default=20_000, help="rows COPYed for the PostgreSQL limit"
    )
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: a,l,t,c2,c3,d (b and c1 run)"
    )
    parser.add_argument(
        "--publisher",
        choices=PUBLISHERS,
        default="bulk",
        help="the devices: pre-encoded packets written one at a time (bench/bulk_publisher.py) "
        "or 50 at a time, Mosquitto's C client per device, or paho from two processes",
    )
    parser.add_argument(
        "--gateway-tree",
        type=Path,
        default=PROJECT_DIR,
        help="the checkout whose gateway runs against this stack (a before/after)",
    )
    parser.add_argument(
        "--no-warm-up",
        dest="warm_up",
        action="store_false",
        help="measure from cold: each device's first reading (and its registry look-up) inside",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    settings = Settings.from_env()
    if "t" not in skip and not TELEGRAF.exists():
        raise SystemExit(f"{TELEGRAF} missing: run network/build-telegraf.sh, or --skip t")
    results: dict[str, Any] = {"devices": args.devices, "readings_per_device": args.readings}
    if "a" not in skip:
        print("ingest bench: (a) broker pass-through ...", flush=True)
        results["broker"] = bench_broker(settings, args.devices, args.readings)
        print(f"  {results['broker']}", flush=True)
    print("ingest bench: signing readings for the gateway run ...", flush=True)
    signed = _sign_all(settings, args.devices, args.readings)
    results["verify_one_process"] = bench_verify(settings, signed)
    print(f"  (b) verify: {results['verify_one_process']}", flush=True)
    if "l" not in skip:
        print("ingest bench: (l) the limits, on the same messages ...", flush=True)
        broker_pid = int((settings.run_dir / "pids" / "mosquitto.pid").read_text())
        limit_signed = _sign_all(settings, 4, min(args.readings, 5000))
        results["limits"] = ingest_limits.measure(
            settings, limit_signed, rows=args.limits_rows, broker_pid=broker_pid
        )
    print(f"ingest bench: (c1) {args.gateways} gateway(s), publishing flat out ...", flush=True)
    publisher = args.publisher
    tree = args.gateway_tree.resolve()
    results["gateway_tree"] = str(tree)
    warm_up = args.warm_up
    results["gateway"] = bench_gateway(
        settings,
        signed,
        gateways=args.gateways,
        publisher=publisher,
        gateway_tree=tree,
        warm_up=warm_up,
    )
    print(f"  {json.dumps(results['gateway'])}", flush=True)
    if results["gateway"]["stored_per_s"] and "limits" in results:
        results["gateway_vs_limits"] = ingest_limits.ratios(
            results["gateway"]["stored_per_s"], results["limits"]
        )
        print(f"  (c1) as a fraction of each limit: {results['gateway_vs_limits']}", flush=True)
    if "t" not in skip:
        print("ingest bench: (t) Telegraf, run (c1)'s messages again, flat out ...", flush=True)
        results["telegraf"] = bench_telegraf(
            settings,
            args.devices * args.readings,
            lambda: _publish(settings, signed, publisher=publisher),
            args.output.parent / "telegraf.log",
        )
        print(f"  {json.dumps(results['telegraf'])}", flush=True)
        results["gateway_vs_telegraf"] = telegraf_ratios(results["gateway"], results["telegraf"])
        print(f"  (c1) beside Telegraf: {results['gateway_vs_telegraf']}", flush=True)
    results["gateway_steady"] = []
    for rate in (float(r) for r in args.rates.split(",") if "c2" not in skip):
        print(f"ingest bench: (c2) the same at a steady {rate:.0f} readings/s ...", flush=True)
        signed = _sign_all(settings, args.devices, args.readings)
        steady = bench_gateway(
            settings,
            signed,
            gateways=args.gateways,
            rate=rate,
            publisher=publisher,
            gateway_tree=tree,
            warm_up=warm_up,
        )
        results["gateway_steady"].append(steady)
        print(f"  {json.dumps(steady)}", flush=True)
    if "c3" not in skip:
        print("ingest bench: (c3) one gateway, flat out ...", flush=True)
        signed = _sign_all(settings, args.devices, args.readings)
        results["gateway_single"] = bench_gateway(
            settings, signed, gateways=1, publisher=publisher, warm_up=warm_up
        )
        print(f"  {json.dumps(results['gateway_single'])}", flush=True)
    if "d" not in skip:
        print("ingest bench: (d) one Fabric transaction per reading ...", flush=True)
        results["baseline_tx_per_reading"] = bench_baseline(settings, args.baseline)
        print(f"  {results['baseline_tx_per_reading']}", flush=True)
    results["measured_at"] = datetime.now(UTC).isoformat()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"ingest bench: results in {args.output}")


if __name__ == "__main__":
    main()
