"""The API's request metrics: counted by route template (never the raw path with its ids), with
the status the client got, and not served by the public app (decision 0032)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from api.app import create_app
from api.metrics import UNMATCHED, RequestMetrics
from tracehub.config import PROJECT_DIR


def _count(route: str, status: str, method: str = "GET") -> float:
    value = REGISTRY.get_sample_value(
        "tracehub_api_requests_total", {"method": method, "route": route, "status": status}
    )
    return value or 0.0


def _app() -> FastAPI:
    router = APIRouter(prefix="/things")

    @router.get("/{thing_id}/parts/{seq}")
    async def part(thing_id: str, seq: int) -> dict[str, str]:
        if thing_id == "absent":
            raise HTTPException(404)
        return {"thing": thing_id}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    app = FastAPI()
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=PROJECT_DIR / "api" / "static"), name="static")
    app.add_middleware(RequestMetrics)
    return app


def test_requests_are_counted_by_route_template_and_status() -> None:
    client = TestClient(_app(), raise_server_exceptions=False)
    template = "/things/{thing_id}/parts/{seq}"
    ok, missing, invalid = _count(template, "200"), _count(template, "404"), _count(template, "422")
    unmatched, failed = _count(UNMATCHED, "404"), _count("/things/boom", "500")
    static = _count("/static/{path}", "200")
    assert client.get("/things/lot-123/parts/7").status_code == 200
    assert client.get("/things/lot-456/parts/8").status_code == 200
    assert client.get("/things/absent/parts/1").status_code == 404
    assert client.get("/things/lot-1/parts/x").status_code == 422
    assert client.get("/no/such/lot-999").status_code == 404
    assert client.get("/things/boom").status_code == 500
    assert client.get("/static/verify.js").status_code == 200
    assert _count(template, "200") == ok + 2
    assert _count(template, "404") == missing + 1
    assert _count(template, "422") == invalid + 1
    assert _count(UNMATCHED, "404") == unmatched + 1
    assert _count("/things/boom", "500") == failed + 1
    assert _count("/static/{path}", "200") == static + 1
    # No series names an id from a path.
    labels = [
        s.labels.get("route", "")
        for metric in REGISTRY.collect()
        if metric.name.startswith("tracehub_api_request")
        for s in metric.samples
    ]
    assert labels and not any("lot-" in route for route in labels)
    latency = REGISTRY.get_sample_value(
        "tracehub_api_request_duration_seconds_count", {"method": "GET", "route": template}
    )
    assert latency is not None and latency >= 4


def test_public_app_has_no_metrics_route() -> None:
    paths = {getattr(route, "path", "") for route in create_app().routes}
    assert "/healthz" in paths
    assert not any("metrics" in path for path in paths)
