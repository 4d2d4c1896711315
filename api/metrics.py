"""Request metrics of the API (an ASGI middleware) and where they are served.

Requests are counted by method, route template (`/proofs/readings/{device_id}/{seq}`, never the
raw path: ids would make one series per object and leak them) and status, with a latency
histogram. The registry is served by `python -m api` on a loopback port of its own
(`TRACEHUB_API_METRICS_PORT`), not on the public app: no route of the app shows it, so the
authorization table (api/policy.py) has no operation for it (decision 0032).
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "tracehub_api_requests",
    "HTTP requests answered, by route template",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "tracehub_api_request_duration_seconds",
    "Time to answer an HTTP request, by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

#: The route label of a request no route matched (scanners' guesses stay one series).
UNMATCHED = "<unmatched>"


def route_template(scope: Scope) -> str:
    """The matched route's path template (routing has run), or `UNMATCHED`."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    mount = scope.get("root_path", "")  # a mounted app (the static files) set its prefix
    return f"{mount}/{{path}}" if mount else UNMATCHED


class RequestMetrics:
    """Counts and times each HTTP request by route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = route_template(scope)
            method = scope["method"]
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - start)
