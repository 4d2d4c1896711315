"""GS1 Digital Link resolver: `/01/{gtin}[/10/{lot}][/21/{serial}]`.

Browsers (Accept: text/html) get the buyer's page, which verifies itself in the browser
(static/verify.js); API clients (application/json, application/ld+json) get the same view as
JSON. An invalid link is 400 with the reason (HTML or JSON, as asked), an unknown one 404.
`?linkType=gs1:certificationInfo` answers with the lot's inspection report(s).

Rendered views are cached for a couple of seconds per (link, language, format): a QR code on a
pallet is scanned in bursts, and readings reach the page batch by batch anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from api import i18n
from api.chart import line_chart
from api.config import ApiConfig
from api.db import read_pool_of
from api.lot_view import LotView, load_lot_view
from api.routing import Router
from ingest.inspections import ReportIntegrityError
from tracehub.gs1 import DigitalLink, DigitalLinkError, parse_path
from tracehub.ipfs_replicated import content_store

router = Router(tags=["resolver"])
templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _isolate(value: object, direction: str) -> str:
    """``value`` inside Unicode isolates (LRI ... PDI) on a right-to-left page: a date or number
    set into a translated sentence keeps its own order and does not drag the punctuation around
    it (what ``<bdi dir="ltr">`` does where markup is possible)."""
    return f"\u2066{value}\u2069" if direction == "rtl" else str(value)


templates.filters["isolate"] = _isolate
_JSON_TYPES = ("application/json", "application/ld+json")
ViewKey = tuple[str, ...]


class ViewCache:
    """Rendered views of one app (not module-wide: two apps may serve two schemas)."""

    def __init__(self) -> None:
        self.views: dict[ViewKey, tuple[float, Response]] = {}
        self.refreshing: dict[ViewKey, asyncio.Future[Response]] = {}

    @classmethod
    def of(cls, request: Request) -> ViewCache:
        state = request.app.state
        if not hasattr(state, "view_cache"):
            state.view_cache = cls()
        cache: ViewCache = state.view_cache
        return cache


_CACHE_LIMIT = 1000


def _cache_seconds(request: Request) -> float:
    config: ApiConfig = request.app.state.config
    return float(str(config.extra.get("page_cache_s", config.page_cache_s)))


def wants_json(accept: str | None) -> bool:
    """Whether the client prefers JSON to HTML (by q-value; HTML on a tie or no header)."""
    best_json = best_html = 0.0
    for item in (accept or "").split(","):
        media, *params = [p.strip() for p in item.split(";")]
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media in _JSON_TYPES:
            best_json = max(best_json, q)
        elif media in ("text/html", "application/xhtml+xml"):
            best_html = max(best_html, q)
    return best_json > best_html


def _locale(request: Request) -> str:
    return i18n.choose_locale(
        request.query_params.get("lang"),
        request.cookies.get(i18n.COOKIE),
        request.headers.get("accept-language"),
    )


def _page(template: str, request: Request, locale: str, status: int, **context: Any) -> Response:
    messages = i18n.catalog(locale)
    html = templates.get_template(template).render(
        t=messages,
        lang=locale,
        dir=i18n.direction(locale),
        locales=i18n.LOCALES,
        path=request.url.path,
        query=request.url.query,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Vary"] = "Accept, Accept-Language, Cookie"
    response.headers["Content-Language"] = locale
    if request.query_params.get("lang") in i18n.LOCALES:
        response.set_cookie(i18n.COOKIE, locale, max_age=365 * 86400, samesite="lax")
    return response


def _error(request: Request, status: int, title_key: str, detail: str) -> Response:
    if wants_json(request.headers.get("accept")):
        return JSONResponse({"detail": detail}, status_code=status)
    locale = _locale(request)
    messages = i18n.catalog(locale)
    body = messages["unknown_body"] if status == 404 else ""
    return _page(
        "error.html", request, locale, status, title=messages[title_key], body=body, detail=detail
    )


def raw_path(request: Request, prefix: str) -> str:
    """The request path after `prefix` as sent, still percent-encoded: a lot may contain an
    encoded "/" (%2F), which the decoded path would turn into a path separator."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else request.url.path
    return path[len(prefix) :] if path.startswith(prefix) else path


def _query_ais(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k.isdigit()}


@router.get(
    "/01/{rest:path}",
    summary="Resolve a GS1 Digital Link (GTIN, optional lot and serial)",
    responses={400: {"description": "invalid link"}, 404: {"description": "unknown product"}},
)
async def resolve(rest: str, request: Request) -> Response:
    """The lot's page (HTML) or view (JSON), by content negotiation."""
    try:
        link = parse_path("/01/" + raw_path(request, "/01/"), _query_ais(request))
    except DigitalLinkError as exc:
        return _error(request, 400, "invalid_title", str(exc))
    as_json = wants_json(request.headers.get("accept"))
    locale = "" if as_json else _locale(request)
    link_type = request.query_params.get("linkType", "")
    # An explicit ?lang= answer also sets the cookie, so it is cached apart from the others.
    chosen = "lang" if request.query_params.get("lang") in i18n.LOCALES else ""
    key = (link.path, locale, "json" if as_json else "html", link_type, chosen)
    ttl = _cache_seconds(request)
    if ttl <= 0 or link_type == "gs1:certificationInfo":
        return await _build(request, link, as_json, locale, link_type)
    views = ViewCache.of(request)
    cached = views.views.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    pending = views.refreshing.get(key)
    if pending is not None:
        # One request re-renders an expired view; the others get the previous one meanwhile
        # (or wait for the first rendering), so expiry never stampedes the database.
        if cached:
            return cached[1]
        await asyncio.wait([pending])  # never raises; the first rendering may have failed
        if not pending.cancelled():
            return pending.result()
        return await _build(request, link, as_json, locale, link_type)
    future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    views.refreshing[key] = future
    try:
        response = await _build(request, link, as_json, locale, link_type)
        if len(views.views) >= _CACHE_LIMIT:
            views.views.clear()
        views.views[key] = (time.monotonic() + ttl, response)
        future.set_result(response)
        return response
    except BaseException:
        future.cancel()  # waiters retry on their own
        raise
    finally:
        del views.refreshing[key]


async def _build(
    request: Request, link: DigitalLink, as_json: bool, locale: str, link_type: str
) -> Response:
    """The response for a valid link, from the database."""
    # A public, read-only page: a hot standby may serve it (api.db.read_pool_of).
    async with read_pool_of(request).connection() as conn:
        view = await load_lot_view(conn, link)
    if view is None:
        detail = f"no product or lot is known under {link.path}"
        return _error(request, 404, "unknown_title", detail)
    if link_type == "gs1:certificationInfo":
        return await _certification(request, view)
    if as_json:
        return JSONResponse(
            view.to_json(), media_type="application/json", headers={"Vary": "Accept"}
        )
    return _render_view(request, locale, view)


async def _certification(request: Request, view: LotView) -> Response:
    """The lot's inspection reports: their list as JSON, or one report's PDF (`?report=` id,
    else the latest) fetched from IPFS and checked against its recorded SHA-256."""
    reports = view.inspections
    if not reports:
        return _error(request, 404, "unknown_title", f"no inspection report for {view.link.path}")
    if wants_json(request.headers.get("accept")):
        return JSONResponse({"inspections": reports})
    wanted = request.query_params.get("report")
    chosen = next((r for r in reports if r["inspection_id"] == wanted), None) if wanted else None
    if wanted and chosen is None:
        return _error(request, 404, "unknown_title", f"no report {wanted} for {view.link.path}")
    report = chosen or reports[-1]
    config = request.app.state.config

    def fetch() -> bytes:
        with content_store(config.stack) as ipfs:
            data = ipfs.cat(report["cid"])
        # The bytes are served only if they are the ones recorded (and anchored).
        if hashlib.sha256(data).hexdigest() != report["sha256"]:
            raise ReportIntegrityError(
                f"report unavailable: IPFS object {report['cid']} does not hash to the recorded "
                "SHA-256"
            )
        return data

    pdf = await run_in_threadpool(fetch)  # IPFS or integrity failures answer 502
    name = f"inspection-{report['inspection_id']}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


def _render_view(request: Request, locale: str, view: LotView) -> Response:
    messages = i18n.catalog(locale)
    band = view.band
    charts = {
        "temperature": line_chart(
            view.series,
            "temperature_c",
            band["temp_min_c"],
            band["temp_max_c"],
            label=messages["temperature"],
            css_class="temperature",
        ),
        "humidity": line_chart(
            view.series,
            "humidity_pct",
            band["humidity_min"],
            band["humidity_max"],
            label=messages["humidity"],
            css_class="humidity",
        ),
    }
    # What the browser verifies: every reading shown, with the value the page shows for it,
    # and every EPCIS event (custody, inspection) by its CBV 2.0 hash.
    records: list[dict[str, Any]] = [
        {
            "type": "reading",
            "device_id": p["device_id"],
            "seq": p["seq"],
            "envelope": p["envelope"],
            "shown": {"temperature_c": p["temperature_c"], "humidity_pct": p["humidity_pct"]},
        }
        for p in view.series
    ]
    for entry in view.recalls + view.journey + view.inspections:
        if "event_hash" in entry:
            record = {
                "type": "event",
                "event_id": entry["event_id"],
                "event_hash": entry["event_hash"],
                "hash_hex": entry["hash_hex"],
            }
            if "pdf_url" in entry:  # an inspection: the browser hashes the PDF itself too
                record["report_url"] = entry["pdf_url"]
                record["report_sha256"] = entry["sha256"]
            records.append(record)
        # A signed reading (published at site level only): a row of its own, or the device's
        # side of a custody step whose row is its EPCIS event.
        reading = entry.get("reading", entry)
        if "envelope" in reading:
            shown = {"loc": reading["loc"]} if reading["loc"] else {}
            records.append(
                {
                    "type": "reading",
                    "device_id": reading["device_id"],
                    "seq": reading["seq"],
                    "envelope": reading["envelope"],
                    "shown": shown,
                }
            )
    config: ApiConfig = request.app.state.config
    verify_data = json.dumps(
        {"records": records, "messages": messages, "witnesses": list(config.witnesses)},
        separators=(",", ":"),
    ).replace("</", "<\\/")
    return _page(
        "lot.html",
        request,
        locale,
        200,
        view=view,
        summary=view.summary,
        charts=charts,
        verify_data=verify_data,
        qr_path="/qr" + view.link.path,
        asset_version=_ASSET_VERSION,
    )


def _asset_version() -> str:
    digest = hashlib.sha256()
    scripts = ("verify.js", "verify-envelope.js", "vendor/reflect-metadata.js", "vendor/x509.js")
    for name in (*scripts, "page.css"):
        path = Path(__file__).parent / "static" / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


_ASSET_VERSION = _asset_version()


def link_of(gtin: str, lot: str | None = None, serial: str | None = None) -> DigitalLink:
    """A validated link (for the QR router and the scenario)."""
    path = f"/01/{gtin}" + (f"/10/{lot}" if lot else "") + (f"/21/{serial}" if serial else "")
    return parse_path(path)
