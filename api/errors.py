"""One error path for the whole API: domain errors become HTTP answers here, and only here.

Routers raise the areas' errors (every one derives from :class:`tracehub.errors.TraceHubError`
and one of its kinds); :func:`install` registers the handlers once, in the app factory. The body
is FastAPI's usual ``{"detail": "<message>"}``.
"""

from __future__ import annotations

import psycopg
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from tracehub.errors import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    RateLimitedError,
    TooLargeError,
    TraceHubError,
    UnauthorizedError,
    UnavailableError,
    UnprocessableError,
    UpstreamError,
)

__all__ = ["install", "status_of"]

#: Most specific kind first: UnprocessableError and TooLargeError are InvalidErrors too.
_STATUS: tuple[tuple[type[TraceHubError], int], ...] = (
    (UnprocessableError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (TooLargeError, status.HTTP_413_CONTENT_TOO_LARGE),
    (InvalidError, status.HTTP_400_BAD_REQUEST),
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (UnauthorizedError, status.HTTP_401_UNAUTHORIZED),
    (ForbiddenError, status.HTTP_403_FORBIDDEN),
    (ConflictError, status.HTTP_409_CONFLICT),
    (RateLimitedError, status.HTTP_429_TOO_MANY_REQUESTS),
    (UnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (UpstreamError, status.HTTP_502_BAD_GATEWAY),
)


def status_of(exc: TraceHubError) -> int:
    """The HTTP status of a domain error: its kind's, else 500 (a bug: no kind was given)."""
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return status.HTTP_500_INTERNAL_SERVER_ERROR


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TraceHubError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else None
    if isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse({"detail": str(exc)}, status_code=status_of(exc), headers=headers)


async def _database_refusal(request: Request, exc: Exception) -> JSONResponse:
    # A constraint or type the database enforces, reached by input no check caught first: the
    # input is unusable (422), never a server error.
    assert isinstance(exc, psycopg.Error)
    detail = exc.diag.message_primary or str(exc)
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` (called once, by ``api.app.create_app``)."""
    app.add_exception_handler(TraceHubError, _domain_error)
    app.add_exception_handler(psycopg.errors.DataError, _database_refusal)
    app.add_exception_handler(psycopg.errors.IntegrityError, _database_refusal)
