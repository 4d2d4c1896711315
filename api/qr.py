"""QR labels for GS1 Digital Links: `GET /qr/01/{gtin}[/10/{lot}][/21/{serial}].png|.svg`.

The QR code encodes the canonical Digital Link URI on the deployment's public base URL
(ApiConfig.public_base_url), so a phone scanning the label lands on the resolver's page.
Error correction level M (15 %): labels get scuffed in warehouses.
"""

from __future__ import annotations

import io

import segno
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from api.resolver import raw_path
from api.routing import Router
from tracehub.gs1 import parse_path

router = Router(tags=["resolver"])
_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def qr_bytes(uri: str, kind: str, *, scale: int = 6) -> bytes:
    """The QR code of `uri` as PNG or SVG bytes."""
    code = segno.make(uri, error="m", micro=False)
    out = io.BytesIO()
    if kind == "svg":
        code.save(out, kind="svg", scale=scale, border=4, xmldecl=False, svgns=True)
    else:
        code.save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


@router.get(
    "/qr/01/{rest:path}",
    summary="QR label (PNG or SVG) encoding a GS1 Digital Link",
    responses={
        200: {"content": {"image/png": {}, "image/svg+xml": {}}},
        400: {"description": "invalid link or format"},
    },
)
async def qr_label(rest: str, request: Request) -> Response:
    """The label of `/01/...`; the path ends in `.png` or `.svg`."""
    stem, dot, kind = raw_path(request, "/qr/01/").rpartition(".")
    if not dot or kind not in _TYPES:
        return JSONResponse({"detail": "a QR label path ends in .png or .svg"}, status_code=400)
    link = parse_path("/01/" + stem)  # an invalid link is a DigitalLinkError: 400
    uri = link.uri(request.app.state.config.public_base_url)
    return Response(
        qr_bytes(uri, kind),
        media_type=_TYPES[kind],
        headers={"Cache-Control": "public, max-age=86400", "X-Digital-Link": uri},
    )
