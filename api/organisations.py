"""Organisations: the hub's operators (admins) record organisations, the GS1 identifiers they
own and auditors' engagements; each organisation sets what its public pages publish.

- ``POST /admin/organisations``, ``POST /admin/organisations/{org_id}/identifiers``,
  ``PUT /admin/organisations/{org_id}/locations/{gln}``, ``POST /admin/engagements`` (admin);
- ``GET|PUT /organisations/{org_id}/publication`` (its members).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Path
from pydantic import BaseModel, Field

from api.db import Connection
from api.policy import Access, guard
from api.routing import Router
from ingest import organisations as core

router = Router(tags=["organisations"])
OrgId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
OrgPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Admin = Annotated[Access, Depends(guard("org.manage"))]


class OrganisationIn(BaseModel):
    org_id: OrgId
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    kind: Literal["supplier", "buyer", "logistics", "inspection", "audit", "hub"]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None


class IdentifierIn(BaseModel):
    kind: Literal["company_prefix", "gln"]
    value: Annotated[str, Field(pattern=r"^[0-9]{4,13}$")]


class LocationIn(BaseModel):
    """A location's master data: its name (shown at site level) and its city and country (shown
    at city level, the default of public pages)."""

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    city: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
    country_code: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


class LocationOut(LocationIn):
    gln: str
    org_id: str


class EngagementIn(BaseModel):
    auditor_org: OrgId
    client_org: OrgId


class Publication(BaseModel):
    """What the organisation's public pages show (as brand owner), and whether it is named on
    other brands' pages where it is receiver or carrier."""

    show_journey: bool = True
    #: how precisely the journey's locations are shown: city and country (from the location
    #: master data), the sites as captured (names, GLNs, the signed readings), or not at all
    journey_detail: Literal["city", "site", "none"] = "city"
    show_conditions: bool = True
    show_inspections: bool = True
    show_alerts: bool = True
    name_when_party: bool = False


@router.post("/admin/organisations", status_code=201, responses={409: {"description": "exists"}})
async def create_organisation(body: OrganisationIn, conn: Connection, _: Admin) -> OrganisationIn:
    await core.create_organisation(conn, body.org_id, body.name, body.kind, body.country)
    await conn.commit()
    return body


@router.post(
    "/admin/organisations/{org_id}/identifiers",
    status_code=201,
    responses={404: {"description": "no organisation"}, 409: {"description": "owned"}},
)
async def add_identifier(
    org_id: OrgPath, body: IdentifierIn, conn: Connection, _: Admin
) -> IdentifierIn:
    """Record a GS1 company prefix or GLN the organisation owns."""
    await core.add_identifier(conn, org_id, body.kind, body.value)
    await conn.commit()
    return body


@router.put(
    "/admin/organisations/{org_id}/locations/{gln}",
    responses={400: {"description": "bad GLN"}, 404: {"description": "no organisation"}},
)
async def set_location(
    org_id: OrgPath,
    gln: Annotated[str, Path(pattern=r"^[0-9]{13}$")],
    body: LocationIn,
    conn: Connection,
    _: Admin,
) -> LocationOut:
    """Record the name, city and country of a GLN the organisation operates."""
    await core.set_location(conn, org_id, gln, body.name, body.city, body.country_code)
    await conn.commit()
    return LocationOut(gln=gln, org_id=org_id, **body.model_dump())


@router.post("/admin/engagements", status_code=201, responses={404: {"description": "no org"}})
async def add_engagement(body: EngagementIn, conn: Connection, _: Admin) -> EngagementIn:
    """The client organisation engages the auditing organisation."""
    await core.add_engagement(conn, body.auditor_org, body.client_org)
    await conn.commit()
    return body


@router.get("/organisations/{org_id}/publication", response_model=Publication)
async def get_publication(
    org_id: OrgPath,
    conn: Connection,
    _: Annotated[Access, Depends(guard("org.publication.read", "org_id"))],
) -> Publication:
    return Publication(**await core.publication(conn, org_id))


@router.put("/organisations/{org_id}/publication", response_model=Publication)
async def put_publication(
    org_id: OrgPath,
    body: Publication,
    conn: Connection,
    _: Annotated[Access, Depends(guard("org.publication.write", "org_id"))],
) -> Publication:
    await core.set_publication(conn, org_id, body.model_dump())
    await conn.commit()
    return body
