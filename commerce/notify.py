"""Alerts on an order's shipments reach the order's buyer and supplier contacts.

`process_alert` attaches the alert to every order whose shipments (or their lots) it concerns,
queues one notification per contact and alert state (unique, so re-processing sends nothing
twice), sends the queued mails over SMTP, then re-evaluates the order's payment hold.
`listen_once` drives it from PostgreSQL's ``NOTIFY tracehub_alerts``; `sweep` from the tables,
for alerts whose notification was missed (worker down).
"""

from __future__ import annotations

import json
import smtplib
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from commerce import metrics
from commerce.ledger import RecordLedger
from commerce.payments.provider import PaymentProvider
from commerce.release import evaluate_release

CHANNEL = "tracehub_alerts"


@dataclass(frozen=True)
class Mailer:
    host: str
    port: int
    sender: str
    timeout_s: float = 10.0

    def send(self, recipient: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = recipient
        message["Subject"] = subject
        message.set_content(body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            smtp.send_message(message)


_ORDERS_OF_ALERT = """
SELECT DISTINCT os.order_id::text FROM alerts a
JOIN order_shipments os ON os.shipment_id = a.shipment_id OR EXISTS (
    SELECT 1 FROM shipment_lots sl WHERE sl.shipment_id = os.shipment_id
    AND sl.gtin = a.gtin AND sl.lot = a.lot)
WHERE a.alert_id = %s
"""


def process_alert(
    conn: Any,
    alert_id: str,
    *,
    mailer: Mailer,
    ledger: RecordLedger | None = None,
    provider: PaymentProvider | None = None,
) -> list[str]:
    """Attach, notify and re-evaluate holds for one alert; returns the orders it concerns."""
    alert = conn.execute(
        "SELECT kind, severity, state, shipment_id, gtin, lot, started_at FROM alerts"
        " WHERE alert_id = %s",
        (alert_id,),
    ).fetchone()
    if alert is None:
        return []
    kind, severity, state, shipment_id, gtin, lot, started_at = alert
    orders = [r[0] for r in conn.execute(_ORDERS_OF_ALERT, (alert_id,)).fetchall()]
    for order_id in orders:
        conn.execute(
            "INSERT INTO order_alerts (order_id, alert_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (order_id, alert_id),
        )
        subject = f"[TraceHub] {severity} {kind} {state}: order {order_id}"
        body = (
            f"Alert {alert_id} ({kind}, {severity}) is {state}.\n"
            f"Shipment: {shipment_id or '-'}  lot: {gtin or '-'}/{lot or '-'}\n"
            f"Started at: {started_at.isoformat()}\nOrder: {order_id}\n"
        )
        conn.execute(
            "INSERT INTO notifications (order_id, alert_id, alert_state, org_id, recipient,"
            " subject, body)"
            " SELECT o.order_id, %s, %s, u.org_id, u.email, %s, %s"
            " FROM orders o JOIN users u ON u.org_id IN (o.buyer_org, o.supplier_org)"
            " WHERE o.order_id = %s AND u.email IS NOT NULL AND NOT u.disabled"
            " ON CONFLICT DO NOTHING",
            (alert_id, state, subject, body, order_id),
        )
    conn.commit()
    send_pending(conn, mailer)
    if ledger is not None:
        for order_id in orders:
            evaluate_release(conn, order_id, ledger=ledger, provider=provider)
    return orders


def send_pending(conn: Any, mailer: Mailer) -> int:
    """Send queued notifications; a failed send is marked and retried by the next call."""
    rows = conn.execute(
        "SELECT id, recipient, subject, body FROM notifications WHERE state <> 'sent' ORDER BY id"
    ).fetchall()
    sent = 0
    for nid, recipient, subject, body in rows:
        try:
            mailer.send(recipient, subject, body)
        except (OSError, smtplib.SMTPException) as exc:
            metrics.ALERT_DELIVERY_FAILURES.inc()
            conn.execute(
                "UPDATE notifications SET state = 'failed', error = %s WHERE id = %s",
                (str(exc), nid),
            )
        else:
            conn.execute(
                "UPDATE notifications SET state = 'sent', sent_at = now(), error = NULL"
                " WHERE id = %s",
                (nid,),
            )
            sent += 1
        conn.commit()
    return sent


def pending_count(conn: Any) -> int:
    """Notifications not sent yet: the worker's outbox (commerce.metrics)."""
    row = conn.execute("SELECT count(*) FROM notifications WHERE state <> 'sent'").fetchone()
    conn.commit()
    return int(row[0])


def listen_once(
    listen_conn: Any,
    conn: Any,
    *,
    timeout_s: float,
    mailer: Mailer,
    ledger: RecordLedger | None = None,
    provider: PaymentProvider | None = None,
) -> list[str]:
    """Wait up to ``timeout_s`` for alert notifications and process each; returns alert ids.

    ``listen_conn`` must be an autocommit connection that ran ``LISTEN tracehub_alerts``.
    """
    handled = []
    first = list(listen_conn.notifies(timeout=timeout_s, stop_after=1))
    # Then drain what else arrived meanwhile without waiting again.
    for note in [*first, *listen_conn.notifies(timeout=0.05)]:
        alert_id = _alert_id(note.payload)
        if alert_id is None:
            continue
        if process_alert(conn, alert_id, mailer=mailer, ledger=ledger, provider=provider):
            handled.append(alert_id)
    return handled


def _alert_id(payload: str) -> str | None:
    """The alert id of a tracehub_alerts payload, or None if it is not one."""
    try:
        return str(uuid.UUID(str(json.loads(payload)["alert_id"])))
    except (ValueError, KeyError, TypeError):
        return None


def sweep(
    conn: Any,
    *,
    mailer: Mailer,
    ledger: RecordLedger | None = None,
    provider: PaymentProvider | None = None,
) -> int:
    """Process alerts on ordered shipments whose current state nobody was notified of."""
    rows = conn.execute(
        "SELECT DISTINCT a.alert_id::text FROM alerts a"
        " JOIN shipment_lots sl ON sl.shipment_id = a.shipment_id"
        "   OR (sl.gtin = a.gtin AND sl.lot = a.lot)"
        " JOIN order_shipments os ON os.shipment_id = sl.shipment_id"
        " WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.alert_id = a.alert_id"
        "   AND n.alert_state = a.state)"
    ).fetchall()
    for (alert_id,) in rows:
        process_alert(conn, alert_id, mailer=mailer, ledger=ledger, provider=provider)
    return len(rows)
