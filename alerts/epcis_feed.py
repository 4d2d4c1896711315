"""The EPCIS subscription feed: moves subscriptions over captured events and delivers them.

One thread (the gateway process runs it next to the alert worker; several may run, the rows
are claimed with SKIP LOCKED). A pass looks at the last captured seq; when it has moved, stream
subscriptions queue their new matching events (ingest/epcis/subscriptions.py). A pass runs
when a capture commits (its NOTIFY on ``epcis_captured``, migration 0020), at each whole second
(scheduled subscriptions whose schedule names that second run) and at least every ``poll_s``.
Then due outbox rows are sent: one signed EPCISQueryDocument per subscription and pass, through
the same outbound policy and signature as alert webhooks, retried with exponential backoff until
``max_attempts`` (at-least-once; one row per event and subscription, so never twice queued).
Decision 0018 says why the worker looks for itself rather than the API pushing after its
commit; decision 0041 why it is woken rather than polling ten times a second.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from alerts.delivery import DeliverySettings, post_webhook, webhook_client
from alerts.outbound import OutboundPolicy
from ingest.epcis.subscriptions import (
    claim_due,
    delivery_batch,
    fill_outbox,
    fire_schedules,
    mark_attempt,
    top_seq,
)
from tracehub import db
from tracehub.config import Settings

__all__ = ["CAPTURED_CHANNEL", "FeedSettings", "FeedWorker", "feed_worker"]

log = logging.getLogger(__name__)
Connect = Callable[[], db.Connection]
# What a capture NOTIFYs at commit (migration 0020's trigger on epcis_events).
CAPTURED_CHANNEL = "epcis_captured"


@dataclass(frozen=True)
class FeedSettings:
    """Where proofs are linked from, the longest wait between passes without a capture's
    notification (passes also run at each whole second), and the delivery (retry) settings."""

    base_url: str
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    poll_s: float = 1.0


class FeedWorker:
    """``start()`` runs the feed on a thread; ``run_once()`` does one pass (for tests)."""

    def __init__(self, connect: Connect, settings: FeedSettings) -> None:
        self._connect = connect
        self.settings = settings
        self._http = webhook_client(settings.delivery)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen_seq = -1
        self._last_second: datetime | None = None
        self.delivered = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="epcis-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self._http.close()

    def _loop(self) -> None:
        conn: db.Connection | None = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = self._connect()
                    conn.execute(f"LISTEN {CAPTURED_CHANNEL}")
                    conn.commit()
                self.run_once(conn)
                conn.commit()  # a session in a transaction gets its notifications only after it
                self._wait(conn)
            except Exception:
                log.exception("EPCIS feed pass failed; retried")
                self._stop.wait(1)
        if conn is not None:
            conn.close()

    def _wait(self, conn: db.Connection) -> None:
        """Until a capture commits, the next whole second (schedules fire by the second; a
        pass just after each one sees every second) or ``poll_s``, whichever comes first."""
        now = time.time()
        to_next_second = math.floor(now) + 1 - now + 0.001
        for _ in conn.notifies(timeout=min(self.settings.poll_s, to_next_second), stop_after=1):
            pass

    def run_once(self, conn: db.Connection, now: datetime | None = None) -> int:
        """Queue what is new, run due schedules, send what is due; returns deliveries sent."""
        top = top_seq(conn)
        conn.commit()
        if top != self._seen_seq and not fill_outbox(conn):
            self._seen_seq = top  # else a subscription has more than a batch to catch up
        second = (now or datetime.now(UTC)).replace(microsecond=0)
        if second != self._last_second:
            fire_schedules(conn, second)
            self._last_second = second
        return self._deliver(conn)

    def _deliver(self, conn: db.Connection) -> int:
        cfg = self.settings.delivery
        sent = 0
        for claim in claim_due(conn, cfg.lease_s):
            try:
                batch = delivery_batch(conn, claim, self.settings.base_url)
                if batch is not None and batch.document is not None:
                    body = json.dumps(batch.document, separators=(",", ":")).encode()
                    post_webhook(
                        self._http,
                        cfg.webhook_policy,
                        batch.dest,
                        batch.secret,
                        body,
                        delivery=f"{claim.subscription_id}:{claim.ids[0]}",
                        event="epcis.query_results",
                    )
                    sent += 1
            except Exception as exc:
                conn.rollback()
                final = claim.attempts >= cfg.max_attempts
                backoff = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (claim.attempts - 1))
                mark_attempt(
                    conn,
                    claim,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=backoff,
                    final=final,
                )
                log.warning("EPCIS subscription %s: %s", claim.subscription_id, exc)
            else:
                mark_attempt(conn, claim, error=None, retry_in_s=0, final=False)
        self.delivered += sent
        return sent


def feed_worker(settings: Settings) -> FeedWorker:
    """The feed on the stack's database (what the gateway process runs)."""
    return FeedWorker(
        lambda: db.connect(settings.postgres_dsn),
        FeedSettings(
            base_url=settings.api.public_url.rstrip("/"),
            delivery=DeliverySettings(webhook_policy=OutboundPolicy.from_settings(settings)),
        ),
    )
