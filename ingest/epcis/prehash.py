"""What was hashed: the CBV 2.0 pre-hash string of a stored event, for auditors.

Kept in ``epcis_events.prehash`` at capture (migration 0011); for an event captured before, it
is recomputed from the stored bytes by the same rule (and the answer says so).
"""

from __future__ import annotations

import json
from typing import Any

from psycopg.rows import dict_row

from ingest.epcis.store import FIND_EVENT
from tracehub import db
from tracehub.epcis.hashing import event_prehash, prehash_sha256

__all__ = ["prehash_record"]


def prehash_record(conn: db.Connection, event_id: str) -> dict[str, Any] | None:
    """``{eventID, eventHash, prehash, sha256, stored}`` of an event (by eventID, else hash
    URI), or None. ``stored`` is false when the pre-hash was recomputed from the event's bytes.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT event_id, event_hash, hash_hex, prehash, event_json FROM epcis_events"
            + FIND_EVENT,
            {"id": event_id},
        )
        row = cur.fetchone()
    if row is None:
        return None
    prehash = row["prehash"]
    stored = prehash is not None
    if prehash is None:
        prehash = event_prehash(json.loads(bytes(row["event_json"])))
    return {
        "eventID": row["event_id"],
        "eventHash": row["event_hash"],
        "prehash": prehash,
        "sha256": prehash_sha256(prehash),
        "matches": prehash_sha256(prehash) == row["hash_hex"],
        "stored": stored,
    }
