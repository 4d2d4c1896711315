"""The commerce worker: follows ``NOTIFY tracehub_alerts`` (attach alerts to orders, mail the
parties, re-evaluate payment holds), applies EPCIS custody events to shipments (then
re-evaluates those orders' holds) and sweeps periodically for anything it missed while down.

    python -m commerce worker [--schema S] [--sweep-s 60]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from types import FrameType
from typing import Any

from commerce import metrics
from commerce.config import CommerceConfig
from commerce.custody import sync_epcis_custody
from commerce.ledger import FabricRecords, RecordLedger
from commerce.notify import CHANNEL, Mailer, listen_once, pending_count, sweep
from commerce.payments.provider import PaymentProvider
from commerce.payments.stripe_provider import StripeProvider
from commerce.release import reevaluate_shipments
from tracehub import db
from tracehub.config import Settings
from tracehub.ledger.local import connect_org
from tracehub.logjson import configure_logging
from tracehub.metrics import serve_metrics

log = logging.getLogger("commerce.worker")


def custody_step(conn: Any, ledger: RecordLedger, provider: PaymentProvider) -> list[str]:
    """Apply new EPCIS custody events, then re-evaluate the holds of the orders they moved."""
    changes = sync_epcis_custody(conn)
    conn.commit()
    reevaluate_shipments(
        conn, [c.rsplit(":", 1)[0] for c in changes], ledger=ledger, provider=provider
    )
    return changes


def run(schema: str | None, sweep_s: float) -> None:
    settings = Settings.from_env()
    # The worker's own database role: commerce and alerts, never a reading (ingest/roles.py).
    settings = replace(settings, postgres_dsn=settings.postgres_dsn_for("worker"))
    config = CommerceConfig.from_settings(settings)
    mailer = Mailer(config.smtp.host, config.smtp.port, config.smtp.sender)
    provider = StripeProvider(
        config.stripe_api_key, config.stripe_api_base, config.stripe_timeout_s
    )
    options = {"options": f"-c search_path={schema}"} if schema else {}
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Registered in the targets dir under the worker's pid: several workers may run.
    endpoint = serve_metrics(
        settings.metrics.worker_port,
        job="worker",
        name=f"commerce-{os.getpid()}",
        targets_dir=settings.metrics_targets_dir,
    )
    try:
        _serve(settings, options, mailer, provider, sweep_s, lambda: stopping)
    finally:
        endpoint.close()


def _serve(
    settings: Settings,
    options: dict[str, str],
    mailer: Mailer,
    provider: PaymentProvider,
    sweep_s: float,
    stopping: Callable[[], bool],
) -> None:
    fabric = settings.fabric
    with connect_org(fabric, 1) as gateway, \
            db.connect(settings.postgres_dsn, autocommit=True, **options) as listener, \
            db.connect(settings.postgres_dsn, **options) as conn:  # fmt: skip
        ledger = FabricRecords(gateway.get_network(fabric.channel).get_contract(fabric.chaincode))
        listener.execute(f"LISTEN {CHANNEL}")
        # Start with a sweep: alerts raised while no worker listened.
        swept = sweep(conn, mailer=mailer, ledger=ledger, provider=provider)
        log.info("listening on %s; first sweep processed %d alerts", CHANNEL, swept)
        print("commerce worker: listening", flush=True)
        next_sweep = time.monotonic() + sweep_s
        while not stopping():
            handled = listen_once(
                listener, conn, timeout_s=1.0, mailer=mailer, ledger=ledger, provider=provider
            )
            if handled:
                log.info("processed alerts %s", handled)
            moved = custody_step(conn, ledger, provider)
            if moved:
                log.info("custody events moved %s", moved)
            if time.monotonic() >= next_sweep:
                sweep(conn, mailer=mailer, ledger=ledger, provider=provider)
                next_sweep = time.monotonic() + sweep_s
            metrics.OUTBOX_DEPTH.set(pending_count(conn))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m commerce worker", description=__doc__)
    parser.add_argument("command", choices=["worker"])
    parser.add_argument("--schema", help="PostgreSQL schema (search_path) to work in")
    parser.add_argument("--sweep-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    configure_logging("INFO", Settings.from_env().metrics.log_format)
    run(args.schema, args.sweep_s)
