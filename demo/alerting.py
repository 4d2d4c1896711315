"""Who hears of the demo's excursion: an alert rule on the lot, the carrier's operations user and
its e-mail subscription.

The rule (alert_rules) is the cold-chain one for the lot: 2-8 °C, tolerated outside for 30
minutes (a door opened at a dock is not an alert; an hour without power is). The gateway's alert
engine raises it from the logger's readings, records it as an EPCIS event (anchored with the
others) and queues its deliveries: the MQTT topics, and an e-mail to the subscription the
carrier's organisation holds. The carrier's user sees it on the dashboard (its live stream while
it is open, its list afterwards); the buyer's page lists it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from psycopg.types.json import Jsonb

from tracehub import db

__all__ = ["ALERT_GRACE_S", "LogisticsUser", "add_alerting"]

#: How long the lot may be outside 2-8 °C before the rule raises an alert.
ALERT_GRACE_S = 1800.0
CARRIER = "oceanic-reefer"


@dataclass(frozen=True)
class LogisticsUser:
    """The carrier's operations user the demo creates (its password is printed once)."""

    username: str
    password: str
    email: str
    rule_id: str


def add_alerting(
    conn: db.Connection, *, gtin: str, lot: str, shipment_id: str, tag: str
) -> LogisticsUser:
    """The lot's temperature rule, the carrier's user and its e-mail subscription (the caller
    commits). ``tag`` makes the names unique to this run."""
    rule_id = f"demo-cold-chain-{tag.lower()}"
    conn.execute(
        "INSERT INTO alert_rules (rule_id, kind, gtin, lot, params, severity, created_by)"
        " VALUES (%s, 'temperature_excursion', %s, %s, %s, 'critical', 'scenario')",
        (rule_id, gtin, lot, Jsonb({"min": 2.0, "max": 8.0, "grace_s": ALERT_GRACE_S})),
    )
    username = f"reefer-ops-{tag.lower()}"
    email = f"{username}@oceanic-reefer.example"
    password = secrets.token_urlsafe(12)
    # Inserted here rather than through api.auth (the demo may not import the API, decision
    # 0013); the API checks any argon2 hash, whatever its parameters.
    conn.execute(
        "INSERT INTO users (username, password_hash, roles, org_id, email)"
        " VALUES (%s, %s, ARRAY['logistics'], %s, %s)",
        (username, PasswordHasher().hash(password), CARRIER, email),
    )
    conn.execute(
        "INSERT INTO alert_subscriptions (channel, target, kinds, shipment_id, created_by,"
        " owner_org) VALUES ('email', %s, ARRAY['temperature_excursion'], %s, %s, %s)",
        (email, shipment_id, username, CARRIER),
    )
    return LogisticsUser(username, password, email, rule_id)
