"""The alert engine: readings and clock ticks in, alerts out (exactly one per breach episode).

`evaluate(rows)` takes freshly stored readings ({device_id, seq, ts, kind, data, loc}), finds the
shipments they describe (device_assignments; an RFID tag's SSCC or GTIN in shipment_lots) and
applies each shipment's rules. `tick(now)` raises what only the passage of time reveals: a
grace period that ran out, a silent sensor, a custody gap. All state lives in PostgreSQL
(alert_rule_state, locked per row, alert_device_cursor), written in the same transaction as
the alerts, so a restarted engine — or a second gateway's engine — neither misses nor repeats
an alert.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from alerts import store
from alerts.event import alert_event, lot_class_uri
from alerts.rules import VALUE_FIELD, VALUE_KINDS, Rule, ShipmentContext, load_context
from alerts.rules import rules_for as load_rules
from tracehub import db
from tracehub.gs1 import DIGITAL_LINK_BASE, decode_epc

log = logging.getLogger(__name__)
#: CBV business steps that hand goods over or move them: they close a custody gap.
CUSTODY_STEPS = (
    "shipping",
    "departing",
    "arriving",
    "receiving",
    "accepting",
    "loading",
    "unloading",
    "transporting",
    "picking",
    "storing",
    "holding",
    "inspecting",
)
Connect = Callable[[], db.Connection]


#: Cache size at which expired entries are swept out (each miss past it sweeps).
_CACHE_SWEEP_AT = 10_000


@dataclass(frozen=True)
class EngineSettings:
    #: How long shipment rules and device assignments are cached (0: always read).
    cache_ttl_s: float = 2.0
    #: Readings read per query when catching up from the readings table.
    catch_up_page: int = 2000


@dataclass
class _State:
    """One alert_rule_state row, held for the length of a transaction."""

    breach_since: datetime | None
    last_ts: datetime | None
    last_value: float | None
    alert_id: str | None
    dirty: bool = False


@dataclass
class _Cached:
    at: float
    value: Any


@dataclass
class _Run:
    """What one transaction touched: locked state rows and alerts changed."""

    states: dict[tuple[str, str], _State] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)


class AlertEngine:
    """Evaluates rules against readings and time; one database connection, not thread-safe."""

    def __init__(self, connect: Connect, settings: EngineSettings | None = None) -> None:
        self._connect = connect
        self.settings = settings or EngineSettings()
        self._conn: db.Connection | None = None
        self._cache: dict[tuple[str, str], _Cached] = {}

    # -- plumbing ------------------------------------------------------------------------

    def _connection(self) -> db.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _cached(self, key: tuple[str, str], load: Callable[[], Any]) -> Any:
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit.at < self.settings.cache_ttl_s:
            return hit.value
        value = load()
        if len(self._cache) >= _CACHE_SWEEP_AT:
            # Keys include every RFID tag seen: drop what has expired so a long-running
            # gateway's cache stays as small as a TTL's worth of traffic.
            ttl = self.settings.cache_ttl_s
            self._cache = {k: c for k, c in self._cache.items() if now - c.at < ttl}
        self._cache[key] = _Cached(now, value)
        return value

    def _run(self, work: Callable[[db.Connection, _Run], None]) -> list[str]:
        """Run `work` in one transaction, write back dirty state, commit; alerts changed."""
        conn = self._connection()
        run = _Run()
        try:
            work(conn, run)
            for (rule_id, subject), st in run.states.items():
                if st.dirty:
                    conn.execute(
                        "UPDATE alert_rule_state SET breach_since = %s, last_ts = %s,"
                        " last_value = %s, alert_id = %s, updated_at = now()"
                        " WHERE rule_id = %s AND subject = %s",
                        (st.breach_since, st.last_ts, st.last_value, st.alert_id, rule_id, subject),
                    )
            conn.commit()
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise
        return run.changed

    def _state(self, conn: db.Connection, run: _Run, rule_id: str, subject: str) -> _State:
        key = (rule_id, subject)
        if key not in run.states:
            conn.execute(
                "INSERT INTO alert_rule_state (rule_id, subject) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING",
                key,
            )
            row = conn.execute(
                "SELECT breach_since, last_ts, last_value, alert_id::text FROM alert_rule_state"
                " WHERE rule_id = %s AND subject = %s FOR UPDATE",
                key,
            ).fetchone()
            assert row is not None
            run.states[key] = _State(*row)
        return run.states[key]

    def _shipment(
        self, conn: db.Connection, shipment_id: str
    ) -> tuple[ShipmentContext, list[Rule]] | None:
        def load() -> tuple[ShipmentContext, list[Rule]] | None:
            ctx = load_context(conn, shipment_id)
            return None if ctx is None else (ctx, load_rules(conn, ctx))

        result: tuple[ShipmentContext, list[Rule]] | None = self._cached(
            ("shipment", shipment_id), load
        )
        return result

    def _assignments(
        self, conn: db.Connection, device_id: str
    ) -> list[tuple[str, datetime, datetime | None]]:
        def load() -> list[tuple[str, datetime, datetime | None]]:
            return [
                (r[0], r[1], r[2])
                for r in conn.execute(
                    "SELECT da.shipment_id, da.valid_from, da.valid_to FROM device_assignments da"
                    " JOIN shipments s USING (shipment_id)"
                    " WHERE da.device_id = %s AND s.state <> 'cancelled'",
                    (device_id,),
                )
            ]

        result: list[tuple[str, datetime, datetime | None]] = self._cached(
            ("device", device_id), load
        )
        return result

    def _tag_shipments(self, conn: db.Connection, epc: str) -> list[str]:
        """Shipments a tag belongs to: its SSCC's, or those in transit carrying its GTIN."""

        def load() -> list[str]:
            decoded = decode_epc(epc)
            if decoded is None:
                return []
            if decoded.scheme == "sscc-96":
                sql = "SELECT DISTINCT shipment_id FROM shipment_lots WHERE sscc = %s"
            elif decoded.scheme == "sgtin-96":
                sql = (
                    "SELECT DISTINCT sl.shipment_id FROM shipment_lots sl JOIN shipments s"
                    " USING (shipment_id) WHERE sl.gtin = %s AND s.state = 'in_transit'"
                )
            else:
                return []
            return [r[0] for r in conn.execute(sql, (decoded.gs1_key,))]

        result: list[str] = self._cached(("tag", epc), load)
        return result

    def shipments_of(self, conn: db.Connection, row: Mapping[str, Any]) -> list[str]:
        """The shipments a reading describes."""
        ts = row["ts"]
        found = [
            sid
            for sid, start, end in self._assignments(conn, str(row["device_id"]))
            if start <= ts and (end is None or ts < end)
        ]
        epc = row["data"].get("epc") if row["kind"] == "rfid" else None
        if isinstance(epc, str):
            found += [s for s in self._tag_shipments(conn, epc) if s not in found]
        return found

    # -- raising and clearing ------------------------------------------------------------

    def _raise(
        self,
        conn: db.Connection,
        run: _Run,
        rule: Rule,
        ctx: ShipmentContext,
        st: _State,
        *,
        device_id: str | None,
        started_at: datetime,
        detail: dict[str, Any],
        location: str | None = None,
    ) -> None:
        # The episode the alert reports started at ``started_at`` (every caller's breach mark).
        st.breach_since, st.dirty = started_at, True
        lots = [
            (g, lot)
            for g, lot in ctx.lots
            if (rule.gtin is None or g == rule.gtin) and (rule.lot is None or lot == rule.lot)
        ]
        detail = {"rule": rule.rule_id, **detail}
        alert_id = store.open_alert(
            conn,
            rule_id=rule.rule_id,
            kind=rule.kind,
            severity=rule.severity,
            shipment_id=ctx.shipment_id,
            gtin=rule.gtin,
            lot=rule.lot,
            device_id=device_id,
            started_at=started_at,
            detail=detail,
        )
        event = alert_event(
            event_id=f"urn:uuid:{alert_id}",
            kind=rule.kind,
            started_at=started_at,
            lots=lots,
            device_id=device_id,
            detail=detail,
            location=location,
        )
        self._capture(conn, alert_id, event)
        store.announce(conn, alert_id, "opened")
        st.alert_id, st.dirty = alert_id, True
        run.changed.append(alert_id)
        log.info("alert %s: %s on %s (%s)", alert_id, rule.kind, ctx.shipment_id, rule.rule_id)

    def _capture(self, conn: db.Connection, alert_id: str, event: dict[str, Any]) -> None:
        """Record the alert's EPCIS event (hashed and anchored by tracehub.epcis)."""
        try:
            # Imported here: an EPCIS module that fails must not stop alerts being raised.
            from ingest.epcis import capture_events

            with conn.transaction():  # a savepoint: a refused event must not lose the alert
                captured = capture_events(conn, [event], source="alerts")
        except Exception as exc:
            log.exception("alert %s: its EPCIS event was not captured", alert_id)
            conn.execute(
                "UPDATE alerts SET detail = detail || %s WHERE alert_id = %s",
                (Jsonb({"epcis_error": str(exc)[:500]}), alert_id),
            )
            return
        conn.execute(
            "UPDATE alerts SET event_hash = %s, detail = detail || %s WHERE alert_id = %s",
            (
                captured[0].event_hash,
                Jsonb({"epcis_event_id": captured[0].event_id}),
                alert_id,
            ),
        )

    def _clear(self, conn: db.Connection, run: _Run, st: _State, at: datetime, note: str) -> None:
        if st.alert_id is not None:
            store.clear_alert(conn, st.alert_id, at, note)
            run.changed.append(st.alert_id)
        st.alert_id, st.breach_since, st.dirty = None, None, True

    # -- readings ------------------------------------------------------------------------

    def evaluate(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """Apply the rules to freshly stored readings; returns the alerts opened or cleared."""
        if not rows:
            return []
        return self._run(lambda conn, run: self._evaluate(conn, run, rows))

    def _evaluate(self, conn: db.Connection, run: _Run, rows: Sequence[Mapping[str, Any]]) -> None:
        devices = sorted({str(r["device_id"]) for r in rows})
        # Lock the devices' cursors (in a fixed order: no deadlock between two gateways), so
        # one reading is evaluated once even if a catch-up and the hook both bring it.
        conn.execute(
            "INSERT INTO alert_device_cursor (device_id, last_seq, last_ts)"
            " SELECT d, 0, 'epoch'::timestamptz FROM unnest(%s::text[]) AS d ORDER BY d"
            " ON CONFLICT DO NOTHING",
            (devices,),
        )
        cursors = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                "SELECT device_id, last_seq, last_ts FROM alert_device_cursor"
                " WHERE device_id = ANY(%s) ORDER BY device_id FOR UPDATE",
                (devices,),
            )
        }
        fresh = sorted(
            (r for r in rows if int(r["seq"]) > cursors[str(r["device_id"])][0]),
            key=lambda r: (str(r["device_id"]), int(r["seq"])),
        )
        activity: dict[tuple[str, str], datetime] = {}  # (shipment, device) -> latest ts
        for row in fresh:
            device, ts = str(row["device_id"]), row["ts"]
            for shipment_id in self.shipments_of(conn, row):
                found = self._shipment(conn, shipment_id)
                if found is None:
                    continue
                ctx, rules = found
                key = (shipment_id, device)
                activity[key] = max(ts, activity.get(key, ts))
                for rule in rules:
                    if rule.kind in VALUE_KINDS and row["kind"] == "environment":
                        self._value(conn, run, rule, ctx, device, row)
                    elif rule.kind == "unexpected_location" and row["kind"] == "rfid":
                        self._location(conn, run, rule, ctx, device, row)
                    elif rule.kind == "sensor_fault":
                        self._fault(conn, run, rule, ctx, device, row)
        for (shipment_id, device), ts in activity.items():
            found = self._shipment(conn, shipment_id)
            assert found is not None
            ctx, rules = found
            for rule in rules:
                subject = {"sensor_silent": f"{shipment_id}/{device}", "custody_gap": shipment_id}
                if rule.kind not in subject:
                    continue
                st = self._state(conn, run, rule.rule_id, subject[rule.kind])
                if st.last_ts is None or ts > st.last_ts:
                    st.last_ts, st.dirty = ts, True
                if st.alert_id is not None and (st.breach_since is None or ts > st.breach_since):
                    self._clear(conn, run, st, ts, f"reading from {device} at {ts.isoformat()}")
        latest: dict[str, tuple[int, datetime]] = {}
        for row in fresh:  # by device and seq: the last of each device is its highest
            latest[str(row["device_id"])] = (int(row["seq"]), row["ts"])
        if latest:  # one statement for all the devices, not a round trip each
            conn.execute(
                "UPDATE alert_device_cursor c SET last_seq = u.seq,"
                " last_ts = greatest(c.last_ts, u.ts), updated_at = now()"
                " FROM unnest(%s::text[], %s::int8[], %s::timestamptz[]) AS u (device_id, seq, ts)"
                " WHERE c.device_id = u.device_id",
                (list(latest), [s for s, _ in latest.values()], [t for _, t in latest.values()]),
            )

    def _value(
        self,
        conn: db.Connection,
        run: _Run,
        rule: Rule,
        ctx: ShipmentContext,
        device: str,
        row: Mapping[str, Any],
    ) -> None:
        value = row["data"].get(VALUE_FIELD[rule.kind])
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        ts: datetime = row["ts"]
        st = self._state(conn, run, rule.rule_id, f"{ctx.shipment_id}/{device}")
        if st.last_ts is not None and ts < st.last_ts:
            return  # older than what we judged already
        st.last_ts, st.last_value, st.dirty = ts, float(value), True
        if not rule.out_of_band(float(value)):
            if st.alert_id is not None:
                self._clear(conn, run, st, ts, f"back in band: {value} at {ts.isoformat()}")
            st.breach_since = None
            return
        if st.breach_since is None:
            st.breach_since = ts
        if st.alert_id is None and ts - st.breach_since >= timedelta(seconds=rule.grace_s):
            self._raise_value(conn, run, rule, ctx, st, device)

    def _raise_value(
        self,
        conn: db.Connection,
        run: _Run,
        rule: Rule,
        ctx: ShipmentContext,
        st: _State,
        device: str,
    ) -> None:
        assert st.breach_since is not None
        self._raise(
            conn,
            run,
            rule,
            ctx,
            st,
            device_id=device,
            started_at=st.breach_since,
            detail={
                "value": st.last_value,
                "min": rule.minimum,
                "max": rule.maximum,
                "grace_s": rule.grace_s,
                "summary": f"{VALUE_FIELD[rule.kind]} {st.last_value} outside "
                f"{rule.minimum}..{rule.maximum} for at least {rule.grace_s:g} s",
            },
        )

    def _location(
        self,
        conn: db.Connection,
        run: _Run,
        rule: Rule,
        ctx: ShipmentContext,
        device: str,
        row: Mapping[str, Any],
    ) -> None:
        loc = row.get("loc")
        if not isinstance(loc, str):
            return
        ts: datetime = row["ts"]
        prefix = f"{ctx.shipment_id}@"
        if loc in rule.expected_locations:
            # Back where it belongs: the episodes at wrong places are over.
            stored = conn.execute(
                "SELECT subject FROM alert_rule_state WHERE rule_id = %s"
                " AND left(subject, %s) = %s AND alert_id IS NOT NULL",
                (rule.rule_id, len(prefix), prefix),
            ).fetchall()
            held = [k[1] for k in run.states if k[0] == rule.rule_id and k[1].startswith(prefix)]
            for subject in sorted({s for (s,) in stored} | set(held)):
                st = self._state(conn, run, rule.rule_id, subject)
                if st.alert_id is not None:
                    self._clear(conn, run, st, ts, f"read at expected location {loc}")
            return
        st = self._state(conn, run, rule.rule_id, prefix + loc)
        if st.alert_id is not None:
            return
        st.last_ts = ts
        self._raise(
            conn,
            run,
            rule,
            ctx,
            st,
            device_id=device,
            started_at=ts,
            location=loc,
            detail={
                "epc": row["data"].get("epc"),
                "location": loc,
                "expected_locations": sorted(rule.expected_locations),
                "summary": f"tag {row['data'].get('epc')} read at {loc}, expected one of "
                f"{', '.join(sorted(rule.expected_locations))}",
            },
        )

    def _fault(
        self,
        conn: db.Connection,
        run: _Run,
        rule: Rule,
        ctx: ShipmentContext,
        device: str,
        row: Mapping[str, Any],
    ) -> None:
        """A health reading reporting a fault opens a breach of its component (subject
        "<shipment>/<device>/<component>"); one reporting no fault, or a sample from the same
        sensor, ends it. The alert is raised once the fault has lasted ``grace_s``."""
        data = row["data"]
        if row["kind"] == "health":
            component, faulty = data.get("component"), data.get("fault") != "none"
        elif row["kind"] == "environment":
            component, faulty = data.get("sensor"), False
        else:
            return
        if not isinstance(component, str):
            return
        ts: datetime = row["ts"]
        st = self._state(conn, run, rule.rule_id, f"{ctx.shipment_id}/{device}/{component}")
        if st.last_ts is not None and ts < st.last_ts:
            return  # older than what we judged already
        st.last_ts, st.dirty = ts, True
        if not faulty:
            if st.alert_id is not None:
                self._clear(conn, run, st, ts, f"{component} working at {ts.isoformat()}")
            st.breach_since = None
            return
        if st.breach_since is None:
            st.breach_since = ts
        if st.alert_id is None and ts - st.breach_since >= timedelta(seconds=rule.grace_s):
            self._raise_fault(conn, run, rule, ctx, st, device, component, data)

    def _raise_fault(
        self,
        conn: db.Connection,
        run: _Run,
        rule: Rule,
        ctx: ShipmentContext,
        st: _State,
        device: str,
        component: str,
        health: Mapping[str, Any] | None = None,
    ) -> None:
        """Raise the fault alert; ``health`` is the latest health reading's data (looked up
        in the readings when the clock, not a reading, ends the grace period)."""
        assert st.breach_since is not None
        if health is None:
            latest = conn.execute(
                "SELECT data FROM readings WHERE device_id = %s AND kind = 'health'"
                " AND data->>'component' = %s AND ts <= %s ORDER BY ts DESC, seq DESC LIMIT 1",
                (device, component, st.last_ts or st.breach_since),
            ).fetchone()
            health = latest[0] if latest else {}
        fault = str(health.get("fault", "unknown"))
        self._raise(
            conn,
            run,
            rule,
            ctx,
            st,
            device_id=device,
            started_at=st.breach_since,
            detail={
                "component": component,
                "fault": fault,
                "fault_detail": health.get("detail"),
                "grace_s": rule.grace_s,
                "summary": f"sensor {component} of {device} faulty ({fault}) since "
                f"{st.breach_since.isoformat()}, for at least {rule.grace_s:g} s",
            },
        )

    # -- time ----------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[str]:
        """Raise what time alone reveals: grace periods run out, silence, custody gaps."""
        return self._run(lambda conn, run: self._tick(conn, run, now))

    def _tick(self, conn: db.Connection, run: _Run, now: datetime) -> None:
        shipments = [
            r[0]
            for r in conn.execute(
                "SELECT shipment_id FROM shipments WHERE state = 'in_transit' UNION"
                " SELECT da.shipment_id FROM device_assignments da JOIN shipments s"
                " USING (shipment_id) WHERE s.state NOT IN ('cancelled', 'delivered')"
                " AND da.valid_from <= %s AND (da.valid_to IS NULL OR %s < da.valid_to)"
                " ORDER BY 1",
                (now, now),
            )
        ]
        for shipment_id in shipments:
            found = self._shipment(conn, shipment_id)
            if found is None:
                continue
            ctx, rules = found
            if not rules:
                continue
            devices = conn.execute(
                "SELECT da.device_id, min(da.valid_from),"
                " (SELECT max(ts) FROM readings r WHERE r.device_id = da.device_id"
                "   AND r.ts >= min(da.valid_from) AND r.ts <= %s)"
                " FROM device_assignments da WHERE da.shipment_id = %s AND da.valid_from <= %s"
                " AND (da.valid_to IS NULL OR %s < da.valid_to) GROUP BY da.device_id"
                " ORDER BY 1",
                (now, shipment_id, now, now),
            ).fetchall()
            for rule in rules:
                if rule.kind in VALUE_KINDS:
                    self._tick_value(conn, run, rule, ctx, [d for d, *_ in devices], now)
                elif rule.kind == "sensor_silent":
                    for device, since, last in devices:
                        self._tick_silent(conn, run, rule, ctx, device, last or since, now)
                elif rule.kind == "sensor_fault":
                    self._tick_fault(conn, run, rule, ctx, [d for d, *_ in devices], now)
                elif rule.kind == "custody_gap" and ctx.state == "in_transit":
                    lasts = [last for _, _, last in devices if last is not None]
                    custody = self._last_custody_event(conn, ctx, now)
                    self._tick_custody(conn, run, rule, ctx, [*lasts, *custody], now)

    def _tick_value(
        self,
        conn: db.Connection,
        run: _Run,
        rule: Rule,
        ctx: ShipmentContext,
        devices: Iterable[str],
        now: datetime,
    ) -> None:
        grace = timedelta(seconds=rule.grace_s)
        subjects = [f"{ctx.shipment_id}/{d}" for d in devices]
        pending = conn.execute(
            "SELECT subject FROM alert_rule_state WHERE rule_id = %s AND subject = ANY(%s)"
            " AND breach_since IS NOT NULL AND alert_id IS NULL AND breach_since <= %s",
            (rule.rule_id, subjects, now - grace),
        ).fetchall()
        for (subject,) in pending:
            st = self._state(conn, run, rule.rule_id, subject)
            if st.alert_id is None and st.breach_since is not None:
                self._raise_value(conn, run, rule, ctx, st, subject.split("/", 1)[1])

    def _tick_fault(
        self,
        conn: db.Connection,
        run: _Run,
        rule: Rule,
        ctx: ShipmentContext,
        devices: list[str],
        now: datetime,
    ) -> None:
        prefix = f"{ctx.shipment_id}/"
        pending = conn.execute(
            "SELECT subject FROM alert_rule_state WHERE rule_id = %s"
            " AND left(subject, %s) = %s AND breach_since IS NOT NULL AND alert_id IS NULL"
            " AND breach_since <= %s ORDER BY subject",
            (rule.rule_id, len(prefix), prefix, now - timedelta(seconds=rule.grace_s)),
        ).fetchall()
        for (subject,) in pending:
            device, _, component = subject[len(prefix) :].partition("/")
            if device not in devices or not component:
                continue
            st = self._state(conn, run, rule.rule_id, subject)
            if st.alert_id is None and st.breach_since is not None:
                self._raise_fault(conn, run, rule, ctx, st, device, component)

    def _tick_silent(
        self,
        conn: db.Connection,
        run: _Run,
        rule: Rule,
        ctx: ShipmentContext,
        device: str,
        last: datetime,
        now: datetime,
    ) -> None:
        if now - last <= timedelta(seconds=rule.silent_s):
            return
        st = self._state(conn, run, rule.rule_id, f"{ctx.shipment_id}/{device}")
        if st.alert_id is not None or (st.last_ts is not None and st.last_ts > last):
            return
        self._raise(
            conn,
            run,
            rule,
            ctx,
            st,
            device_id=device,
            started_at=last,
            detail={
                "silent_s": rule.silent_s,
                "last_reading": last.isoformat(),
                "summary": f"no reading from {device} since {last.isoformat()}",
            },
        )

    def _last_custody_event(
        self, conn: db.Connection, ctx: ShipmentContext, now: datetime
    ) -> list[datetime]:
        """The latest custody EPCIS event (shipping, receiving, ...) naming the shipment's
        lots or logistic units, as captured through tracehub.epcis."""
        ids = [lot_class_uri(g, lot) for g, lot in ctx.lots] + [
            f"{DIGITAL_LINK_BASE}/00/{sscc}" for sscc in ctx.ssccs
        ]
        row = conn.execute(
            "SELECT max(event_time) FROM epcis_events WHERE source <> 'alerts'"
            " AND epcs && %s AND event_time <= %s"
            " AND regexp_replace(coalesce(biz_step, ''), '^.*[/:]', '') = ANY(%s)",
            (ids, now, list(CUSTODY_STEPS)),
        ).fetchone()
        return [row[0]] if row and row[0] is not None else []

    def _tick_custody(
        self,
        conn: db.Connection,
        run: _Run,
        rule: Rule,
        ctx: ShipmentContext,
        lasts: list[datetime],
        now: datetime,
    ) -> None:
        st = self._state(conn, run, rule.rule_id, ctx.shipment_id)
        marks = [t for t in (ctx.shipped_at, st.last_ts, *lasts) if t is not None]
        if not marks:
            return
        last = max(marks)
        if st.alert_id is not None:
            if st.breach_since is not None and last > st.breach_since:
                self._clear(conn, run, st, last, f"custody event or reading at {last.isoformat()}")
            return
        if now - last <= timedelta(seconds=rule.gap_s):
            return
        self._raise(
            conn,
            run,
            rule,
            ctx,
            st,
            device_id=None,
            started_at=last,
            detail={
                "gap_s": rule.gap_s,
                "last_custody": last.isoformat(),
                "summary": f"shipment {ctx.shipment_id} in transit without a custody event or "
                f"reading since {last.isoformat()}",
            },
        )

    # -- catching up ---------------------------------------------------------------------

    def catch_up(self, devices: Iterable[str] | None = None) -> int:
        """Evaluate stored readings the engine has not seen (dropped by the hook, or stored
        while no engine ran). Without `devices`: every currently assigned device."""
        conn = self._connection()
        if devices is None:
            devices = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT device_id FROM device_assignments"
                    " WHERE valid_to IS NULL OR valid_to > now()"
                )
            ]
        conn.commit()
        done = 0
        for device in devices:
            while True:
                rows = conn.execute(
                    "SELECT r.device_id, r.seq, r.ts, r.kind, r.data, r.loc FROM readings r"
                    " WHERE r.device_id = %s AND r.seq > coalesce((SELECT last_seq FROM"
                    "  alert_device_cursor c WHERE c.device_id = %s), 0)"
                    " AND r.ts >= (SELECT min(valid_from) FROM device_assignments a"
                    "  WHERE a.device_id = %s)"
                    " ORDER BY r.seq LIMIT %s",
                    (device, device, device, self.settings.catch_up_page),
                ).fetchall()
                conn.commit()
                if not rows:
                    break
                keys = ("device_id", "seq", "ts", "kind", "data", "loc")
                self.evaluate([dict(zip(keys, r, strict=True)) for r in rows])
                done += len(rows)
                if len(rows) < self.settings.catch_up_page:
                    break
        return done
