"""Alert rules: what they are, which ones apply to a shipment, and the rules table (alert_rules)
as people edit it through the API (async: list, get, create, replace, delete).

A rule (table alert_rules) targets a product, a lot or a shipment and applies to every shipment
carrying that product or lot, or to that shipment. A product with a storage band in `products`
gets a default temperature (and humidity) rule wherever no explicit rule of that kind covers it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from psycopg.types.json import Jsonb

from alerts.errors import AlertsError, RuleExistsError, RuleNotFoundError
from alerts.store import row_of, rows_of, shipment_exists
from ingest.parties import visible_lot, visible_shipment
from tracehub import db
from tracehub.db import AsyncConnection
from tracehub.errors import UnprocessableError

Kind = Literal[
    "temperature_excursion",
    "humidity_excursion",
    "sensor_silent",
    "unexpected_location",
    "custody_gap",
    "sensor_fault",
]
KINDS: tuple[str, ...] = get_args(Kind)
VALUE_KINDS = ("temperature_excursion", "humidity_excursion")
#: The reading field each value rule watches.
VALUE_FIELD = {"temperature_excursion": "temperature_c", "humidity_excursion": "humidity_pct"}
#: Grace period of a product's default band rule (the cold-chain example: 10 minutes).
DEFAULT_GRACE_S = 600.0
#: No duration or bound beyond a year's seconds (a timedelta overflows far beyond).
MAX_SECONDS = 366 * 86400.0


class RuleError(AlertsError, UnprocessableError):
    """A rule's target or parameters do not fit its kind; the message says which and why."""


@dataclass(frozen=True)
class Rule:
    """One rule as the engine applies it to one shipment (band already resolved)."""

    rule_id: str
    kind: Kind
    severity: str = "warning"
    gtin: str | None = None
    lot: str | None = None
    shipment_id: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    grace_s: float = 0.0
    silent_s: float = 0.0
    gap_s: float = 0.0
    expected_locations: frozenset[str] = field(default_factory=frozenset)

    def out_of_band(self, value: float) -> bool:
        return (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        )

    @property
    def inert(self) -> bool:
        """A value rule without a band (none given, product has none) never fires."""
        return self.kind in VALUE_KINDS and self.minimum is None and self.maximum is None


def _number(params: Mapping[str, Any], name: str, *, required: bool = False) -> float | None:
    value = params.get(name)
    if value is None:
        if required:
            raise RuleError(f"params.{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleError(f"params.{name} must be a number")
    if not math.isfinite(value) or abs(value) > MAX_SECONDS:
        raise RuleError(f"params.{name} must be a finite number of at most {MAX_SECONDS:g}")
    return float(value)


def check_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a rule's params for its kind; returns them normalised (unknown keys refused)."""
    allowed = {
        "temperature_excursion": {"min", "max", "grace_s"},
        "humidity_excursion": {"min", "max", "grace_s"},
        "sensor_silent": {"silent_s"},
        "unexpected_location": {"expected_locations"},
        "custody_gap": {"gap_s"},
        "sensor_fault": {"grace_s"},
    }
    if kind not in allowed:
        raise RuleError(f"kind must be one of {list(KINDS)}")
    unknown = set(params) - allowed[kind]
    if unknown:
        raise RuleError(
            f"params for {kind} take only {sorted(allowed[kind])}; got {sorted(unknown)}"
        )
    out: dict[str, Any] = {}
    if kind in VALUE_KINDS:
        low, high = _number(params, "min"), _number(params, "max")
        if low is not None and high is not None and low >= high:
            raise RuleError("params.min must be below params.max")
        grace = _number(params, "grace_s") or 0.0
        if grace < 0:
            raise RuleError("params.grace_s must not be negative")
        out = {"grace_s": grace} | ({"min": low} if low is not None else {})
        out |= {"max": high} if high is not None else {}
    elif kind == "sensor_fault":
        grace = _number(params, "grace_s") or 0.0
        if grace < 0:
            raise RuleError("params.grace_s must not be negative")
        out = {"grace_s": grace}
    elif kind in ("sensor_silent", "custody_gap"):
        name = "silent_s" if kind == "sensor_silent" else "gap_s"
        value = cast(float, _number(params, name, required=True))
        if value <= 0:
            raise RuleError(f"params.{name} must be positive")
        out = {name: value}
    else:
        locations = params.get("expected_locations")
        if (
            not isinstance(locations, list)
            or not locations
            or not all(
                isinstance(x, str) and 0 < len(x) <= 256 and "\x00" not in x for x in locations
            )
        ):
            raise RuleError("params.expected_locations must be a non-empty list of locations")
        out = {"expected_locations": sorted(set(locations))}
    return out


@dataclass(frozen=True)
class ShipmentContext:
    """A shipment as the rules see it: its state, lots and the bands of its products."""

    shipment_id: str
    state: str
    shipped_at: Any
    lots: tuple[tuple[str, str], ...]
    ssccs: tuple[str, ...]
    bands: Mapping[str, Mapping[str, float | None]]  # gtin -> temp_min_c, ... (None: unset)


def load_context(conn: db.Connection, shipment_id: str) -> ShipmentContext | None:
    row = conn.execute(
        "SELECT state, shipped_at FROM shipments WHERE shipment_id = %s", (shipment_id,)
    ).fetchone()
    if row is None:
        return None
    lots = conn.execute(
        "SELECT DISTINCT sl.gtin, sl.lot, p.temp_min_c, p.temp_max_c, p.humidity_min,"
        " p.humidity_max FROM shipment_lots sl JOIN products p USING (gtin)"
        " WHERE sl.shipment_id = %s ORDER BY 1, 2",
        (shipment_id,),
    ).fetchall()
    bands = {
        gtin: {
            "temp_min_c": _opt(tmin),
            "temp_max_c": _opt(tmax),
            "humidity_min": _opt(hmin),
            "humidity_max": _opt(hmax),
        }
        for gtin, _, tmin, tmax, hmin, hmax in lots
    }
    ssccs = conn.execute(
        "SELECT DISTINCT sscc FROM shipment_lots WHERE shipment_id = %s AND sscc IS NOT NULL",
        (shipment_id,),
    ).fetchall()
    return ShipmentContext(
        shipment_id,
        row[0],
        row[1],
        tuple((g, lot) for g, lot, *_ in lots),
        tuple(r[0] for r in ssccs),
        bands,
    )


def _opt(value: object) -> float | None:
    return None if value is None else float(cast(float, value))


def _band(kind: str, gtins: list[str], ctx: ShipmentContext) -> tuple[float | None, float | None]:
    """The narrowest band of these products (a shipment of two products keeps both safe)."""
    low_key, high_key = (
        ("temp_min_c", "temp_max_c")
        if kind == "temperature_excursion"
        else ("humidity_min", "humidity_max")
    )
    lows = [b for g in gtins if (b := ctx.bands.get(g, {}).get(low_key)) is not None]
    highs = [b for g in gtins if (b := ctx.bands.get(g, {}).get(high_key)) is not None]
    return (max(lows) if lows else None, min(highs) if highs else None)


def rules_for(conn: db.Connection, ctx: ShipmentContext) -> list[Rule]:
    """Every enabled rule that applies to the shipment, plus the products' default bands."""
    gtins = sorted({g for g, _ in ctx.lots})
    rows = conn.execute(
        "SELECT rule_id, kind, severity, gtin, lot, shipment_id, params FROM alert_rules"
        " WHERE enabled AND (shipment_id = %s OR (lot IS NULL AND gtin = ANY(%s))"
        "  OR (gtin, lot) IN (SELECT gtin, lot FROM shipment_lots WHERE shipment_id = %s))"
        " ORDER BY rule_id",
        (ctx.shipment_id, gtins, ctx.shipment_id),
    ).fetchall()
    rules: list[Rule] = []
    covered: set[tuple[str, str]] = set()  # (kind, gtin) with an explicit value rule
    for rule_id, kind, severity, gtin, lot, shipment_id, params in rows:
        targets = [gtin] if gtin else gtins
        low, high = params.get("min"), params.get("max")
        if kind in VALUE_KINDS:
            covered.update((kind, g) for g in targets)
            band = _band(kind, targets, ctx)
            low = band[0] if low is None else low
            high = band[1] if high is None else high
        rules.append(
            Rule(
                rule_id=rule_id,
                kind=kind,
                severity=severity,
                gtin=gtin,
                lot=lot,
                shipment_id=shipment_id,
                minimum=None if low is None else float(low),
                maximum=None if high is None else float(high),
                grace_s=float(params.get("grace_s", 0.0)),
                silent_s=float(params.get("silent_s", 0.0)),
                gap_s=float(params.get("gap_s", 0.0)),
                expected_locations=frozenset(params.get("expected_locations", ())),
            )
        )
    for gtin in gtins:
        for kind, prefix in (("temperature_excursion", "temp"), ("humidity_excursion", "rh")):
            if (kind, gtin) in covered:
                continue
            low, high = _band(kind, [gtin], ctx)
            if low is None and high is None:
                continue
            rules.append(
                Rule(
                    rule_id=f"default:{prefix}:{gtin}",
                    kind=cast(Kind, kind),
                    gtin=gtin,
                    minimum=low,
                    maximum=high,
                    grace_s=DEFAULT_GRACE_S,
                )
            )
    return [r for r in rules if not r.inert]


# -- the rules table, as the API edits it -----------------------------------------------


@dataclass(frozen=True)
class RuleSpec:
    """A rule as a person states it: an alert_rules row without who made it and when."""

    rule_id: str
    kind: str
    gtin: str | None
    lot: str | None
    shipment_id: str | None
    params: Mapping[str, Any]
    severity: str
    enabled: bool


RULE_COLUMNS = (
    "rule_id, kind, gtin, lot, shipment_id, params, severity, enabled, created_by,"
    " created_at, updated_at"
)


def _checked(rule: RuleSpec) -> dict[str, Any]:
    """Check a rule's target and params; returns the params normalised (RuleError if not)."""
    if sum([rule.shipment_id is not None, rule.gtin is not None]) != 1:
        raise RuleError("a rule targets exactly one of: shipment_id, gtin (a product), gtin + lot")
    if rule.lot is not None and rule.gtin is None:
        raise RuleError("a lot rule needs the lot's gtin")
    return check_params(rule.kind, rule.params)


async def _check_target(conn: AsyncConnection, rule: RuleSpec) -> None:
    if rule.shipment_id is not None:
        if not await shipment_exists(conn, rule.shipment_id):
            raise RuleError(f"shipment {rule.shipment_id} does not exist")
        return
    if rule.lot is not None:
        found = await row_of(
            conn, "SELECT 1 FROM lots WHERE gtin = %s AND lot = %s", (rule.gtin, rule.lot)
        )
        what = f"lot {rule.gtin}/{rule.lot}"
    else:
        found = await row_of(conn, "SELECT 1 FROM products WHERE gtin = %s", (rule.gtin,))
        what = f"product {rule.gtin}"
    if found is None:
        raise RuleError(f"{what} does not exist")


async def list_rules(conn: AsyncConnection, orgs: list[str] | None = None) -> list[dict[str, Any]]:
    """Every alert rule (the products' default bands are implicit, not listed); with ``orgs``,
    those on shipments, lots and products one of them is a party to."""
    return await rows_of(
        conn,
        f"SELECT {RULE_COLUMNS} FROM alert_rules r WHERE %(orgs)s::text[] IS NULL"
        " OR EXISTS (SELECT 1 FROM shipments vs0 WHERE vs0.shipment_id = r.shipment_id"
        f"   AND {visible_shipment('vs0')})"
        f" OR (r.lot IS NOT NULL AND {visible_lot('r.gtin', 'r.lot')})"
        " OR (r.lot IS NULL AND EXISTS (SELECT 1 FROM products vp0 WHERE vp0.gtin = r.gtin"
        "   AND vp0.owner_org = ANY(%(orgs)s)))"
        " ORDER BY rule_id",
        {"orgs": orgs},
    )


async def get_rule(conn: AsyncConnection, rule_id: str) -> dict[str, Any]:
    row = await row_of(
        conn, f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE rule_id = %s", (rule_id,)
    )
    if row is None:
        raise RuleNotFoundError(f"no alert rule {rule_id}")
    return row


def _columns(rule: RuleSpec, params: dict[str, Any]) -> tuple[Any, ...]:
    """kind, gtin, lot, shipment_id, params, severity, enabled: what create and replace write."""
    return (
        rule.kind,
        rule.gtin,
        rule.lot,
        rule.shipment_id,
        Jsonb(params),
        rule.severity,
        rule.enabled,
    )


async def create_rule(conn: AsyncConnection, rule: RuleSpec, created_by: str) -> dict[str, Any]:
    """Add a rule for a product, a lot or a shipment (RuleExistsError if its id is taken)."""
    params = _checked(rule)
    await _check_target(conn, rule)
    cur = await conn.execute(
        "INSERT INTO alert_rules (rule_id, kind, gtin, lot, shipment_id, params, severity,"
        " enabled, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (rule_id) DO NOTHING RETURNING rule_id",
        (rule.rule_id, *_columns(rule, params), created_by),
    )
    if await cur.fetchone() is None:
        raise RuleExistsError(f"alert rule {rule.rule_id} already exists")
    return await get_rule(conn, rule.rule_id)


async def replace_rule(conn: AsyncConnection, rule_id: str, rule: RuleSpec) -> dict[str, Any]:
    """Replace a rule's kind, target, params, severity or enabled flag."""
    if rule.rule_id != rule_id:
        raise RuleError("rule_id in the body must match the path")
    params = _checked(rule)
    await _check_target(conn, rule)
    cur = await conn.execute(
        "UPDATE alert_rules SET kind = %s, gtin = %s, lot = %s, shipment_id = %s, params = %s,"
        " severity = %s, enabled = %s, updated_at = now() WHERE rule_id = %s RETURNING rule_id",
        (*_columns(rule, params), rule_id),
    )
    if await cur.fetchone() is None:
        raise RuleNotFoundError(f"no alert rule {rule_id}")
    return await get_rule(conn, rule_id)


async def delete_rule(conn: AsyncConnection, rule_id: str) -> None:
    """Delete a rule and the engine's memory of its breaches."""
    cur = await conn.execute("DELETE FROM alert_rules WHERE rule_id = %s", (rule_id,))
    if cur.rowcount == 0:
        raise RuleNotFoundError(f"no alert rule {rule_id}")
    await conn.execute("DELETE FROM alert_rule_state WHERE rule_id = %s", (rule_id,))
