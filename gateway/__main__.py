"""Run a gateway process: `python -m gateway [--group ingest] [--name gw-1]`.

Connects to the local stack (tracehub.config.Settings) as the gateway's own database role,
checks that the schema is migrated (its owner migrates it: `python -m ingest migrate`), and runs
until SIGTERM.

`python -m gateway --name gw-1 --leave` removes a stopped gateway from its group for good: the
broker ends its session, so it no longer queues a share of the readings for it
(docs/acknowledgement.md, "Scaling a gateway group down").
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import replace

from alerts.epcis_feed import feed_worker
from alerts.service import gateway_alert_worker
from certs.pki import DEFAULT_GATEWAY, PKI
from certs.registry import LedgerRegistry
from certs.registry_cache import RegistryCache
from gateway.consumer import Consumer, ConsumerSettings, leave
from gateway.service import Gateway, GatewaySettings
from ingest.epcis.anchoring import EventAnchorLoop
from ingest.schema import require_migrated
from ingest.store import ReadingStore
from tracehub import db
from tracehub.config import Settings
from tracehub.ipfs_replicated import content_store
from tracehub.ledger.local import connect_org
from tracehub.logjson import configure_logging
from tracehub.metrics import serve_metrics
from tracehub.pki_names import gateway_services
from tracehub.verify import TrustStore


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway")
    parser.add_argument("--group", default="ingest", help="shared subscription group")
    parser.add_argument(
        "--name",
        default=DEFAULT_GATEWAY,
        help="this gateway process's name: its broker identities are service:gateway-NAME and"
        " service:gateway-NAME.alerts (issued by `tracehub certs gateway NAME`)",
    )
    parser.add_argument("--batch-readings", type=int, default=5000)
    parser.add_argument("--batch-seconds", type=float, default=2.0)
    parser.add_argument(
        "--session-expiry",
        type=int,
        default=ConsumerSettings.session_expiry_s,
        help="seconds the broker keeps this group member's session and queue while it is away",
    )
    parser.add_argument(
        "--ack-interval",
        type=float,
        default=GatewaySettings.ack_interval_s,
        help="seconds between a device's end-to-end acknowledgements (they are batched)",
    )
    parser.add_argument(
        "--registry-refresh",
        type=float,
        default=5.0,
        help="seconds between re-reads of the ledger's device registry (bounds how long a "
        "revoked device's readings are still accepted)",
    )
    parser.add_argument(
        "--leave",
        action="store_true",
        help="end this (stopped) member's broker session, so it takes no share, and exit",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    settings = Settings.from_env()
    configure_logging(args.log_level, settings.metrics.log_format)
    pki = PKI(settings.pki_dir)
    # Each process has certificates of its own: the broker takes the CN as the client id, so
    # two processes sharing one would end each other's sessions.
    consumer_service, alerts_service = gateway_services(args.name)
    if not all(pki.service_paths(s)[0].exists() for s in (consumer_service, alerts_service)):
        logging.error(
            "gateway %s: no broker identity; run `tracehub certs gateway %s` first",
            args.name,
            args.name,
        )
        return 1
    consumer_settings = replace(
        ConsumerSettings.for_service(settings, consumer_service),
        group=args.group,
        session_expiry_s=args.session_expiry,
    )
    if args.leave:
        if not leave(consumer_settings):
            logging.error("gateway %s: the broker did not accept the connection", args.name)
            return 1
        logging.info("gateway %s left: the broker ended its session", args.name)
        return 0
    # The gateway's own database role (ingest/roles.py): it stores readings and cannot change
    # the schema, so the schema must already be migrated by its owner (`python -m ingest migrate`).
    settings = replace(settings, postgres_dsn=settings.postgres_dsn_for("gateway"))
    with db.connect(settings.postgres_dsn) as conn:
        require_migrated(conn)
    consumer = Consumer(consumer_settings)

    def connect() -> db.Connection:
        # Named for pg_stat_activity by the gateway and the loop that connects (each loop has a
        # connection of its own): which part of the hub a server process works for.
        loop = threading.current_thread().name
        return db.connect(settings.postgres_dsn, application_name=f"gateway {args.name} {loop}")

    # The alert rules over the readings stored.
    alerts = gateway_alert_worker(settings, pki, service=alerts_service)
    ledger_gateway = connect_org(settings.fabric, 1)
    network = ledger_gateway.get_network(settings.fabric.channel)
    chaincode = network.get_contract(settings.fabric.chaincode)
    qscc = network.get_contract("qscc")  # block numbers of re-submitted anchors
    # Only devices enrolled on the ledger are accepted, not whatever the hub's PKI issued.
    registry = RegistryCache(LedgerRegistry(chaincode), refresh_s=args.registry_refresh)
    gateway = Gateway(
        GatewaySettings(
            batch_max_readings=args.batch_readings,
            batch_max_age_s=args.batch_seconds,
            crl_path=pki.crl_path,
            ack_interval_s=args.ack_interval,
        ),
        consumer=consumer,
        trust=TrustStore.from_pem_files(pki.ca_bundle_path, pki.crl_path),
        directory=registry,
        registry=registry,
        store_factory=lambda: ReadingStore(connect),
        ipfs=content_store(settings),
        ledger=chaincode,
        block_lookup=qscc,
        channel=settings.fabric.channel,
        alert_hooks=[alerts],
    )
    # EPCIS events captured through the API are anchored by the gateway too (own IPFS client).
    event_anchors = EventAnchorLoop(
        lambda: db.connect(settings.postgres_dsn),
        content_store(settings),
        chaincode,
        block_lookup=qscc,
        channel=settings.fabric.channel,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    feed = feed_worker(settings)  # EPCIS subscriptions (decision 0018)
    # Found by Prometheus through the targets file (decision 0032): gateways come and go.
    endpoint = serve_metrics(
        settings.metrics.gateway_port,
        job="gateway",
        name=args.name,
        targets_dir=settings.metrics_targets_dir,
    )
    alerts.start()
    feed.start()
    gateway.start()
    event_anchors.start()
    logging.info(
        "gateway %s running (group %s), metrics at %s",
        args.name,
        args.group,
        endpoint.url,
        extra={"metrics_port": endpoint.port},
    )
    stop.wait()
    endpoint.close()
    gateway.stop()
    event_anchors.stop()
    feed.stop()
    alerts.stop()
    ledger_gateway.close()
    logging.info("gateway stopped: %s", gateway.stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
