"""The page's languages: English, Chinese, Spanish, Arabic (right to left).

The language comes from `?lang=` (which the switch also stores in a cookie), else the cookie,
else the best match of Accept-Language by q-value (RFC 9110 §12.5.4, with a primary-subtag
fallback: `es-MX` picks `es`), else English. Catalogs are flat JSON objects in `api/locales/`
(docs/decisions: why not gettext/Babel).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LOCALES = ("en", "zh", "es", "ar")
DEFAULT = "en"
RTL = frozenset({"ar"})
COOKIE = "lang"
_DIR = Path(__file__).parent / "locales"


@cache
def catalog(locale: str) -> dict[str, str]:
    """The locale's messages, English filling any gap (checked complete by the tests)."""
    english: dict[str, str] = json.loads((_DIR / "en.json").read_text("utf-8"))
    if locale == DEFAULT:
        return english
    own: dict[str, str] = json.loads((_DIR / f"{locale}.json").read_text("utf-8"))
    return {**english, **own}


def parse_accept_language(header: str) -> list[tuple[str, float]]:
    """Language ranges with their weights, best first (q=0 means 'not acceptable')."""
    ranges: list[tuple[str, float, int]] = []
    for position, item in enumerate(header.split(",")):
        parts = [p.strip() for p in item.split(";")]
        tag = parts[0].lower()
        if not tag:
            continue
        weight = 1.0
        for param in parts[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = max(0.0, min(1.0, float(value)))
                except ValueError:
                    weight = 0.0
        ranges.append((tag, weight, position))
    ranges.sort(key=lambda r: (-r[1], r[2]))  # stable: equal weights keep header order
    return [(tag, weight) for tag, weight, _ in ranges]


def from_accept_language(header: str | None) -> str | None:
    """The supported locale the header prefers most, if any."""
    ranges = parse_accept_language(header or "")
    refused = {tag.split("-")[0] for tag, weight in ranges if weight == 0}
    for tag, weight in ranges:
        primary = tag.split("-")[0]
        if weight == 0:
            continue
        if primary in LOCALES and primary not in refused:
            return primary
        if tag == "*":
            return next((loc for loc in LOCALES if loc not in refused), None)
    return None


def choose_locale(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The locale to render in: explicit choice, remembered choice, browser preference."""
    for choice in (query, cookie):
        if choice and choice.lower() in LOCALES:
            return choice.lower()
    return from_accept_language(accept_language) or DEFAULT


def direction(locale: str) -> str:
    """`rtl` or `ltr`, for the page's `dir` attribute."""
    return "rtl" if locale in RTL else "ltr"
