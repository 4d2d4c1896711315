"""Organisations as the hub's operators manage them: the organisation, the GS1 identifiers it
owns, the locations it operates (0013), auditors' engagements, and what its public pages
publish (0002, 0009, 0013).

Async functions (the API's); the caller commits. Who may call them is api/policy.py's.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ingest.errors import IngestError
from tracehub.db import AsyncConnection
from tracehub.errors import ConflictError, InvalidError, NotFoundError
from tracehub.gs1 import check_digit

__all__ = [
    "PUBLICATION_FIELDS",
    "OrganisationError",
    "add_engagement",
    "add_identifier",
    "create_organisation",
    "publication",
    "set_location",
    "set_publication",
]

PUBLICATION_FIELDS = (
    "show_journey",
    "journey_detail",
    "show_conditions",
    "show_inspections",
    "show_alerts",
    "name_when_party",
)
#: What an organisation without a row publishes (0009's column defaults).
DEFAULT_PUBLICATION: dict[str, Any] = {
    "show_journey": True,
    "journey_detail": "city",
    "show_conditions": True,
    "show_inspections": True,
    "show_alerts": True,
    "name_when_party": False,
}


class OrganisationError(IngestError, InvalidError):
    """An organisation, identifier or engagement that cannot be recorded as given."""


class OrganisationExistsError(IngestError, ConflictError):
    """The organisation or identifier is already recorded."""


class OrganisationNotFoundError(IngestError, NotFoundError):
    """No such organisation."""


async def create_organisation(
    conn: AsyncConnection, org_id: str, name: str, kind: str, country: str | None
) -> None:
    try:
        await conn.execute(
            "INSERT INTO organisations (org_id, name, kind, country) VALUES (%s, %s, %s, %s)",
            (org_id, name, kind, country),
        )
    except psycopg.errors.UniqueViolation as exc:
        raise OrganisationExistsError(f"organisation {org_id} exists") from exc


async def add_identifier(conn: AsyncConnection, org_id: str, kind: str, value: str) -> None:
    """Record that ``org_id`` owns a GS1 company prefix or GLN."""
    try:
        await conn.execute(
            "INSERT INTO organisation_identifiers (kind, value, org_id) VALUES (%s, %s, %s)",
            (kind, value, org_id),
        )
    except psycopg.errors.UniqueViolation as exc:
        raise OrganisationExistsError(f"{kind} {value} is already owned") from exc
    except psycopg.errors.ForeignKeyViolation as exc:
        raise OrganisationNotFoundError(f"no organisation {org_id}") from exc


async def add_engagement(conn: AsyncConnection, auditor_org: str, client_org: str) -> None:
    """``client_org`` engages ``auditor_org``: its auditors read what the client may."""
    try:
        await conn.execute(
            "INSERT INTO audit_engagements (auditor_org, client_org) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING",
            (auditor_org, client_org),
        )
    except psycopg.errors.ForeignKeyViolation as exc:
        raise OrganisationNotFoundError("no such organisation") from exc


async def set_location(
    conn: AsyncConnection, org_id: str, gln: str, name: str, city: str, country_code: str
) -> None:
    """Record (or correct) the location master data of a GLN the organisation operates: what
    public pages show of it at city level (city, country) and at site level (name)."""
    if len(gln) != 13 or not gln.isdigit() or str(check_digit(gln[:12])) != gln[12]:
        raise OrganisationError(f"{gln} is not a GLN (13 digits, the last its check digit)")
    try:
        await conn.execute(
            "INSERT INTO locations (gln, org_id, name, city, country_code)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (gln) DO UPDATE SET org_id = EXCLUDED.org_id,"
            " name = EXCLUDED.name, city = EXCLUDED.city, country_code = EXCLUDED.country_code,"
            " updated_at = now()",
            (gln, org_id, name, city, country_code),
        )
    except psycopg.errors.ForeignKeyViolation as exc:
        raise OrganisationNotFoundError(f"no organisation {org_id}") from exc


async def publication(conn: AsyncConnection, org_id: str) -> dict[str, Any]:
    """The organisation's publication settings (the defaults where it set none)."""
    cur = await conn.execute(
        f"SELECT {', '.join(PUBLICATION_FIELDS)} FROM publication_settings WHERE org_id = %s",
        (org_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return dict(DEFAULT_PUBLICATION)
    return dict(zip(PUBLICATION_FIELDS, row, strict=True))


async def set_publication(conn: AsyncConnection, org_id: str, settings: dict[str, Any]) -> None:
    values = {**DEFAULT_PUBLICATION, **settings}
    columns = ", ".join(PUBLICATION_FIELDS)
    placeholders = ", ".join(["%s"] * (len(PUBLICATION_FIELDS) + 1))
    updates = ", ".join(f"{f} = EXCLUDED.{f}" for f in PUBLICATION_FIELDS)
    await conn.execute(
        f"INSERT INTO publication_settings (org_id, {columns}) VALUES ({placeholders})"
        f" ON CONFLICT (org_id) DO UPDATE SET {updates}, updated_at = now()",
        (org_id, *(values[f] for f in PUBLICATION_FIELDS)),
    )
