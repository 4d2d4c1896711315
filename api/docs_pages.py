"""The interactive API docs, served entirely by the hub: Swagger UI at /docs, its script and
style from the `fastapi-offline` package (mounted at /docs/assets), so the page works on a
closed network and makes no request to another origin; and the favicon.

/redoc sends the reader to /docs: ReDoc writes its styles into inline <style> elements at run
time, which the hub's Content-Security-Policy refuses (no `unsafe-inline`, api/security_headers.py),
so it cannot render here; one working page beats two.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "install"]

ASSETS = "/docs/assets"
_SHIPPED = Path(fastapi_offline.__file__).parent / "static"
_FAVICON = Path(__file__).parent / "static" / "favicon.ico"
_REDIRECT = "/docs/oauth2-redirect"


def install(app: FastAPI) -> None:
    """Add /docs, its OAuth2 redirect and assets, /redoc (to /docs) and /favicon.ico to
    ``app`` (made with ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS, StaticFiles(directory=_SHIPPED), name="docs-assets")
    title = f"{app.title} API"
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
            oauth2_redirect_url=_REDIRECT,
            # No badge from the public validator service: it would fetch from another origin.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    @app.get(_REDIRECT, include_in_schema=False)
    async def redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> RedirectResponse:
        return RedirectResponse("/docs", status_code=308)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(_FAVICON, media_type="image/x-icon")
