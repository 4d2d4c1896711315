"""Ending access at once: revoke one's own tokens, and (admins) revoke, disable or enable a user.

Each bumps the user's token version (api/token_versions.py), so every token issued before is
refused: at once by this process, within `token_versions.CACHE_S` by the others. Enabling a
disabled user does not bring old tokens back (the version was bumped when they were disabled);
the user signs in again.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request, Response
from pydantic import BaseModel

from api import token_versions
from api.auth import AuthError
from api.db import Connection
from api.policy import Access, guard
from api.routing import Router
from tracehub.db import AsyncConnection
from tracehub.errors import NotFoundError

router = Router(prefix="/auth", tags=["auth"])
Admin = Annotated[Access, Depends(guard("user.manage"))]


class UserNotFoundError(AuthError, NotFoundError):
    """No user has this id."""


class UserState(BaseModel):
    user_id: str
    username: str
    disabled: bool
    token_version: int


async def _change(
    conn: AsyncConnection, request: Request, user_id: str, disabled: bool | None
) -> UserState:
    """Bump the user's token version (and set `disabled`, unless None); commit; forget the
    cached version."""
    cur = await conn.execute(
        "UPDATE users SET token_version = token_version + 1,"
        " disabled = coalesce(%s, disabled) WHERE user_id = %s"
        " RETURNING user_id::text, username, disabled, token_version",
        (disabled, user_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise UserNotFoundError(f"no user {user_id}")
    await conn.commit()  # before the cache forgets: a re-read must see the new version
    token_versions.of(request.app).forget(user_id)
    return UserState(user_id=row[0], username=row[1], disabled=row[2], token_version=row[3])


@router.post("/revoke", status_code=204)
async def revoke_mine(
    request: Request,
    conn: Connection,
    access: Annotated[Access, Depends(guard("auth.revoke"))],
) -> Response:
    """Revoke every token of the caller, this one included (e.g. after a leaked token)."""
    await _change(conn, request, access.principal.user_id, None)
    return Response(status_code=204)


@router.post("/users/{user_id}/revoke", response_model=UserState)
async def revoke_user(
    user_id: uuid.UUID, request: Request, conn: Connection, admin: Admin
) -> UserState:
    """Revoke every token of a user; they may sign in again."""
    return await _change(conn, request, str(user_id), None)


@router.post("/users/{user_id}/disable", response_model=UserState)
async def disable_user(
    user_id: uuid.UUID, request: Request, conn: Connection, admin: Admin
) -> UserState:
    """Disable a user: their tokens are refused and they cannot sign in."""
    return await _change(conn, request, str(user_id), True)


@router.post("/users/{user_id}/enable", response_model=UserState)
async def enable_user(
    user_id: uuid.UUID, request: Request, conn: Connection, admin: Admin
) -> UserState:
    """Enable a disabled user again; tokens from before stay refused."""
    return await _change(conn, request, str(user_id), False)
