"""The TraceHub HTTP API: one FastAPI (Starlette) application; each concept is a router.

`create_app(config)` builds it; `python -m api` serves it with uvicorn. The OpenAPI document
is at /openapi.json (schemathesis fuzzes it in the test suite), with its overview and examples
from api/openapi_docs.py; /docs and /redoc render it from assets the app serves itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api import (
    accounts,
    alerts,
    auditor,
    auth,
    commerce,
    dashboard,
    docs_pages,
    epcis,
    epcis_queries,
    errors,
    inspections,
    ledger,
    openapi_docs,
    organisations,
    pki,
    proofs,
    qr,
    recalls,
    resolver,
    trace,
)
from api.config import ApiConfig
from api.db import close_sync_pool, make_pool, make_read_pool
from api.metrics import RequestMetrics
from api.security_headers import SecurityHeaders
from api.token_versions import TokenVersions


def create_app(config: ApiConfig | None = None) -> FastAPI:
    config = config or ApiConfig.from_env()
    pool = make_pool(config)
    read_pool = make_read_pool(config)  # None: reads go through `pool`
    versions = TokenVersions(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True, timeout=30)
        if read_pool is not None:
            await read_pool.open(wait=True, timeout=30)  # prefer-standby: else the primary
        await versions.open()
        try:
            yield
        finally:
            await versions.close()
            await pool.close()
            if read_pool is not None:
                await read_pool.close()
            close_sync_pool(app)
            ledger.close(app)

    app = FastAPI(
        title="TraceHub",
        version="0.1.0",
        summary="Supply-chain traceability: EPCIS events, proofs, alerts and commerce.",
        lifespan=lifespan,
        # Served by docs_pages from assets the app ships: no CDN (a closed network has none).
        docs_url=None,
        redoc_url=None,
    )
    app.state.config = config
    errors.install(app)
    app.add_middleware(
        SecurityHeaders,
        https=config.public_base_url.startswith("https://"),
        witnesses=config.witnesses,
    )
    # Outermost: every answer is counted, the security headers' and the errors' too.
    app.add_middleware(RequestMetrics)
    app.state.pool = pool
    app.state.read_pool = read_pool
    app.state.token_versions = versions

    @app.get("/healthz", tags=["meta"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    # Starlette tries routes in order: the public pages a QR scan and its verification hit
    # most come first, so their requests do not walk every staff route (bench/web_bench.py).
    app.include_router(resolver.router)
    app.include_router(proofs.router)
    app.include_router(pki.router)
    app.include_router(qr.router)
    static = Path(__file__).parent / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")
    app.include_router(auth.router)
    app.include_router(accounts.router)
    app.include_router(commerce.router)
    app.include_router(alerts.router)
    app.include_router(epcis.router)
    app.include_router(epcis_queries.router)
    app.include_router(inspections.router)
    app.include_router(auditor.router)
    app.include_router(dashboard.router)
    app.include_router(organisations.router)
    app.include_router(trace.router)
    app.include_router(recalls.router)
    # Routers of the other concepts are included here, one line each.
    docs_pages.install(app)
    openapi_docs.install(app)
    return app
