"""What every staff page (dashboard, auditor) is rendered with: its title and the readable labels
of the codes its tables show (shipment states, alert kinds, states and severities), in the
language the browser asks for (api/i18n.py), so the script shows "In transit", not `in_transit`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api import i18n

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
#: Catalog keys whose messages the staff scripts use, by prefix.
LABEL_PREFIXES = ("alert_", "shipment_state_", "severity_")


def labels(locale: str) -> dict[str, str]:
    """The catalog's labels of codes, for the page's script."""
    return {
        key: text for key, text in i18n.catalog(locale).items() if key.startswith(LABEL_PREFIXES)
    }


def render(request: Request, template: str, title: str) -> HTMLResponse:
    """The staff page `template` in the caller's language (it carries labels, never data)."""
    locale = i18n.choose_locale(
        request.query_params.get("lang"),
        request.cookies.get(i18n.COOKIE),
        request.headers.get("accept-language"),
    )
    context: dict[str, Any] = {"title": title, "lang": locale, "labels": labels(locale)}
    return TEMPLATES.TemplateResponse(request, template, context)
