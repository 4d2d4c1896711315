"""The API's router: skips, in one comparison, a request its routes cannot match.

Starlette matches a request against the app's routes one by one, and FastAPI (0.165) asks each
included router to try every route of its own. With a dozen routers before it, an order
(`POST /commerce/orders`) was tried against every public, sign-in and account route first: about
320 of its 4,040 Python calls, and most of the orders benchmark's 17 % more API CPU per order
than before those routers existed (decision 0037). A `Router` knows the first path segments its
routes can start with — its prefix's, or those of its routes when each starts with a fixed
segment — and answers "no match" to any other request without trying a route. A router with a
route or prefix that starts with a parameter (`/{x}`) knows no such set and tries its routes as
before.

Only for routers the app includes directly: a router included in another one is matched with its
parent's prefix in front of every path, which it does not know, so nested routers stay plain
`APIRouter`s (tests/api/test_routing.py checks both, and that every operation is still reached).
"""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Match
from starlette.types import Scope

__all__ = ["Router", "first_segment"]

_PARAMETER = re.compile(r"\{[^}]*\}")


def first_segment(path: str) -> str:
    """`/commerce/orders` -> `commerce`; `/` -> ``."""
    return path.split("/", 2)[1] if path.startswith("/") else ""


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class Router(APIRouter):
    """An `APIRouter` that refuses at once a path outside the first segments of its routes."""

    _segments_of: tuple[int, frozenset[str] | None] | None = None

    def segments(self) -> frozenset[str] | None:
        """The first path segments this router's routes can match; None: any."""
        if self._segments_of is not None and self._segments_of[0] == len(self.routes):
            return self._segments_of[1]
        found: frozenset[str] | None
        if self.prefix and not _PARAMETER.search(first_segment(self.prefix)):
            found = frozenset({first_segment(self.prefix)})
        elif self.prefix:  # `/{tenant}/...`: any first segment
            found = None
        elif all(isinstance(route, APIRoute | APIWebSocketRoute) for route in self.routes):
            firsts = {first_segment(getattr(route, "path", "")) for route in self.routes}
            found = None if any(_PARAMETER.search(s) for s in firsts) else frozenset(firsts)
        else:  # an included router or a mount without a prefix: no set known
            found = None
        self._segments_of = (len(self.routes), found)
        return found

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        segments = self.segments()
        if segments is not None and first_segment(_route_path(scope)) not in segments:
            return Match.NONE, {}
        return super().matches(scope)
