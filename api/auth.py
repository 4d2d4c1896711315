"""Who is calling: OAuth2 password flow, bearer tokens with roles, Argon2id password hashes.

- `POST /auth/token` (OAuth2 password grant, form-encoded) returns a signed bearer token
  (JWT, HS256) whose `scope` holds the user's roles; `GET /auth/me` says who the token is.
- `require("logistics", "admin")` is the dependency a route uses to admit those roles; it
  answers 401 without a valid token and 403 with a token lacking every listed role.
- Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended
  option), and rehashed on sign-in when those parameters change.

A token carries its user's token version (claim `ver`), checked on every request against
the user's current one (api/token_versions.py, cached at most a few seconds): disabling a user
or revoking their tokens (api/accounts.py) refuses every older token. Sign-in attempts are
throttled per account and per address (api/throttle.py): 429 with `Retry-After`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from pydantic import BaseModel

from api import throttle, token_versions
from api.db import Connection
from api.routing import Router
from tracehub import db
from tracehub.errors import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    RateLimitedError,
    TraceHubError,
    UnauthorizedError,
)

ROLES = ("buyer", "supplier", "logistics", "inspector", "auditor", "admin")
_ISSUER = "tracehub"
_hasher = PasswordHasher()
# A hash of a random password, verified when the user does not exist, so a wrong username and
# a wrong password take the same time.
_DUMMY_HASH = _hasher.hash(uuid.uuid4().hex)

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


class AuthError(TraceHubError):
    """Root of the API's own errors: who is calling, and what they may do."""


class NotAuthenticatedError(AuthError, UnauthorizedError):
    """No valid bearer token (missing, forged, malformed or expired), or wrong credentials."""


class SignInThrottledError(AuthError, RateLimitedError):
    """Too many sign-in attempts for this account or from this address; try again later."""


class MissingRoleError(AuthError, ForbiddenError):
    """The caller holds none of the roles the route admits."""


class InvalidRolesError(AuthError, InvalidError):
    """Roles that are not a non-empty subset of ROLES."""


class UserExistsError(AuthError, ConflictError):
    """A user of that name already exists."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    username: str
    roles: frozenset[str]
    org_id: str | None
    token_version: int = 0  # the user's version when the token was issued

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    scope: str


class Me(BaseModel):
    user_id: str
    username: str
    roles: list[str]
    org_id: str | None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _check_roles(roles: Iterable[str]) -> list[str]:
    roles = sorted(set(roles))
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise InvalidRolesError(f"roles must be a non-empty subset of {list(ROLES)}; got {roles}")
    return roles


def create_user(
    conn: db.Connection,
    username: str,
    password: str,
    roles: Sequence[str],
    *,
    org_id: str | None = None,
    email: str | None = None,
    locale: str = "en",
) -> str:
    """Insert a user (synchronously: CLI, set-up, tests); returns the user id."""
    checked = _check_roles(roles)
    try:
        row = conn.execute(
            "INSERT INTO users (username, password_hash, roles, org_id, email, locale)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING user_id::text",
            (username, hash_password(password), checked, org_id, email, locale),
        ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise UserExistsError(f"user {username!r} already exists") from exc
    assert row is not None
    conn.commit()
    return str(row[0])


def issue_token(key: bytes, principal: Principal, ttl_s: int) -> str:
    now = int(time.time())
    claims = {
        "iss": _ISSUER,
        "sub": principal.user_id,
        "name": principal.username,
        "scope": " ".join(sorted(principal.roles)),
        "org": principal.org_id,
        "ver": principal.token_version,
        "iat": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(key))


def read_token(key: bytes, token: str) -> Principal:
    """The principal a token names; `NotAuthenticatedError` if it is forged, malformed or
    expired."""
    try:
        decoded = jwt.decode(token, OctKey.import_key(key), algorithms=["HS256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": _ISSUER},
            sub={"essential": True},
            exp={"essential": True},
        ).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise NotAuthenticatedError(f"invalid token: {exc}") from exc
    claims = decoded.claims
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise NotAuthenticatedError("invalid token: scope is not a string")
    version = claims.get("ver")
    if not isinstance(version, int) or isinstance(version, bool):
        raise NotAuthenticatedError("invalid token: no token version")
    return Principal(
        user_id=str(claims["sub"]),
        username=str(claims.get("name", "")),
        roles=frozenset(scope.split()),
        org_id=claims.get("org"),
        token_version=version,
    )


async def _current(request: Request, principal: Principal) -> Principal:
    """The principal, if its token's version is still its user's (not revoked, not disabled)."""
    current = await token_versions.of(request.app).current(principal.user_id)
    if current != principal.token_version:
        raise NotAuthenticatedError("the token was revoked or the user is disabled")
    return principal


async def current_principal(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    if not token:
        raise NotAuthenticatedError("a bearer token is required")
    return await _current(request, read_token(request.app.state.config.token_key, token))


async def optional_principal(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal | None:
    """The caller if a valid token came with the request; None for the public."""
    if not token:
        return None
    try:
        return await _current(request, read_token(request.app.state.config.token_key, token))
    except NotAuthenticatedError:
        return None


def require(*roles: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency admitting callers holding any of `roles` (admin is always admitted)."""
    _check_roles(roles)

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if not principal.has(*roles, "admin"):
            raise MissingRoleError(f"this needs one of the roles {sorted(roles)}")
        return principal

    return dependency


router = Router(prefix="/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=TokenResponse,
    responses={401: {"description": "wrong username or password"}},
)
async def token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    conn: Connection,
) -> TokenResponse:
    """OAuth2 password grant: exchange username and password for a bearer token."""
    address = request.client.host if request.client else "unknown"
    refused = await throttle.reserve(conn, form.username, address)
    if refused is not None:
        raise SignInThrottledError(
            f"too many sign-in attempts for this {refused.scope}; try again later",
            refused.retry_after_s,
        )
    cur = await conn.execute(
        "SELECT user_id::text, password_hash, roles, org_id, token_version FROM users"
        " WHERE username = %s AND NOT disabled",
        (form.username,),
    )
    row = await cur.fetchone()
    stored_hash = row[1] if row else _DUMMY_HASH
    try:
        _hasher.verify(stored_hash, form.password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise NotAuthenticatedError("wrong username or password") from None
    if row is None:
        raise NotAuthenticatedError("wrong username or password")
    user_id, _, roles, org_id, version = row
    await throttle.succeeded(conn, form.username, address)
    if _hasher.check_needs_rehash(stored_hash):
        await conn.execute(
            "UPDATE users SET password_hash = %s WHERE user_id = %s",
            (hash_password(form.password), user_id),
        )
    principal = Principal(user_id, form.username, frozenset(roles), org_id, version)
    config = request.app.state.config
    return TokenResponse(
        access_token=issue_token(config.token_key, principal, config.token_ttl_s),
        expires_in=config.token_ttl_s,
        scope=" ".join(sorted(roles)),
    )


@router.get("/me", response_model=Me)
async def me(principal: Annotated[Principal, Depends(current_principal)]) -> Me:
    """Who the bearer token belongs to."""
    return Me(
        user_id=principal.user_id,
        username=principal.username,
        roles=sorted(principal.roles),
        org_id=principal.org_id,
    )
