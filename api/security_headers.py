"""Security headers on every response (an ASGI middleware; docs/security.md).

- `Content-Security-Policy`: scripts, styles, fetches and images from the hub itself only, no
  inline script or style (`unsafe-inline` nowhere), no plugins, no `<base>`, forms posting only
  here, and `frame-ancestors 'none'` (no framing: clickjacking). The pages keep their scripts and
  styles in /static; the buyer page's data block is `type="application/json"`, which is data,
  not script.
- `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` (older browsers),
  `Referrer-Policy: no-referrer` (page URLs name lots and serial numbers: none leaks to
  another site),
  `Permissions-Policy` denying camera, microphone, geolocation and payment,
  `Cross-Origin-Opener-Policy: same-origin`.
- `Strict-Transport-Security` only when the public URL is https: the app itself usually speaks
  plain HTTP behind the TLS-terminating proxy, and HSTS on a plain-HTTP deployment (the local
  stack) would be ignored at best.

The interactive docs (/docs, /redoc; api/docs_pages.py) load Swagger UI and ReDoc from the hub
itself and start them with an inline script and style; there the policy admits the hashes of
the page's own inline scripts and styles (computed from the page as served: FastAPI's fixed
template, no user input), never `unsafe-inline`, and no other origin.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "SecurityHeaders", "page_csp"]

_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'{connect}; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def page_csp(witnesses: Sequence[str] = ()) -> str:
    """The pages' policy; the buyer page may also ask the ledger witnesses (their origins)."""
    origins = sorted({_origin(url) for url in witnesses})
    return _PAGE_CSP.format(connect="".join(" " + o for o in origins))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


CSP = page_csp()
_DOCS_PATHS = ("/docs", "/redoc", "/docs/oauth2-redirect")
_DOCS_CSP = (
    "default-src 'self'; script-src 'self'{scripts}; "
    "style-src 'self'{styles}; "
    "font-src 'self'; img-src 'self' data:; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
_INLINE_STYLE = re.compile(rb"<style[^>]*>(.*?)</style>", re.S | re.I)
_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
HSTS = b"max-age=31536000; includeSubDomains"


def _with(headers: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]) -> None:
    """Add the `extra` headers the response has not set itself."""
    present = {name.lower() for name, _ in headers}
    headers.extend((name, value) for name, value in extra if name not in present)


def _hashes(pattern: re.Pattern[bytes], body: bytes) -> str:
    return "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode()}'"
        for m in pattern.finditer(body)
    )


def docs_csp(body: bytes) -> str:
    """The docs pages' policy: the hashes of their own inline scripts and styles."""
    return _DOCS_CSP.format(
        scripts=_hashes(_INLINE_SCRIPT, body), styles=_hashes(_INLINE_STYLE, body)
    )


class SecurityHeaders:
    """Pure ASGI middleware (streams such as SSE pass through unbuffered)."""

    def __init__(self, app: ASGIApp, *, https: bool = False, witnesses: Sequence[str] = ()) -> None:
        self.app = app
        self.extra = [*_COMMON, *([(b"strict-transport-security", HSTS)] if https else [])]
        # Built once: this runs on every response, the buyer page's hottest path.
        self.page_headers = [
            (b"content-security-policy", page_csp(witnesses).encode()),
            *self.extra,
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in _DOCS_PATHS:
            await self._docs(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                _with(headers, self.page_headers)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Buffer the (small, static) docs page to hash its inline scripts."""
        start: Message | None = None
        body = b""

        async def buffer(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                start = message
                return
            body += message.get("body", b"")
            if message.get("more_body", False):
                return
            assert start is not None
            headers = [
                (n, v) for n, v in start.get("headers", []) if n.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(body)).encode()))
            _with(headers, [(b"content-security-policy", docs_csp(body).encode()), *self.extra])
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffer)
