"""Custody events from the EPCIS store (tracehub.epcis, 0004's ``epcis_events``) move shipments.

An ObjectEvent (or any event) with bizStep ``shipping`` or ``receiving`` whose EPCs include a
logistic unit's SSCC (``urn:epc:id:sscc:<company prefix>.<serial reference>``) that a shipment
carries (0003's ``shipment_lots.sscc``) is applied to that shipment with
`commerce.shipments.apply_custody_event`, its CBV 2.0 event hash kept as evidence. An event
already applied (its hash is in ``custody_events``) or one that does not fit the shipment's
state (a second shipping event) changes nothing, so the sync can run as often as wanted.
"""

from __future__ import annotations

from typing import Any

from epcpy.epc_schemes.sscc import SSCC

from commerce.shipments import apply_custody_event
from commerce.states import InvalidTransitionError
from ingest.parties import sscc_custodians


def sscc_of_uri(uri: str) -> str | None:
    """The 18-digit SSCC of an SSCC EPC pure identity URI (epcpy, GS1 TDS), or None."""
    if not uri.startswith("urn:epc:id:sscc:"):
        return None
    try:
        element = str(SSCC(uri).gs1_element_string())  # "(00)" + 18 digits
    except Exception:  # epcpy raises its own ConvertException for malformed URIs
        return None
    return element[4:]


def sync_epcis_custody(conn: Any, *, actor: str = "epcis", days: int = 30) -> list[str]:
    """Apply recent shipping/receiving EPCIS events to the shipments whose SSCCs they name;
    returns "<shipment>:<state>" for each change. The caller commits."""
    rows = conn.execute(
        "SELECT e.event_hash, e.event_time, e.biz_step, e.epcs, e.captured_by_org"
        " FROM epcis_events e"
        " WHERE e.biz_step IN ('shipping', 'receiving')"
        " AND e.record_time > now() - make_interval(days => %s)"
        " AND NOT EXISTS (SELECT 1 FROM custody_events c WHERE c.event_hash = e.event_hash)"
        " ORDER BY e.event_time, e.seq",
        (days,),
    ).fetchall()
    changes = []
    for event_hash, event_time, biz_step, epcs, org in rows:
        ssccs = [s for s in (sscc_of_uri(epc) for epc in epcs) if s]
        if not ssccs:
            continue
        custodians = sscc_custodians(conn, ssccs)
        for shipment_id in sorted(custodians):
            if org is not None and org not in custodians[shipment_id]:
                continue  # not the carrier's or the receiver's event: it moves nothing
            conn.execute("SAVEPOINT custody")
            try:
                state = apply_custody_event(
                    conn, shipment_id, biz_step, event_time, event_hash=event_hash, actor=actor
                )
            except InvalidTransitionError:
                conn.execute("ROLLBACK TO SAVEPOINT custody")
                continue
            conn.execute("RELEASE SAVEPOINT custody")
            changes.append(f"{shipment_id}:{state}")
    return changes
