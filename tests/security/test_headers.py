"""Finding: no security headers (no CSP, no frame-ancestors, no nosniff, no referrer policy).

Now: every response carries them (api/security_headers.py); the pages run under a CSP without
`unsafe-inline`, so an injected inline script does not run, and no other site can frame them.
The buyer's QR page is checked the same way in tests/api/test_qr_page_browser.py."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from api.security_headers import page_csp
from tests.support.api import ApiHarness, api_harness
from tests.support.browser import chromium, csp_violations, serve, sign_in
from tests.support.processes import http_server
from tracehub.config import Settings

COMMON = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


def test_every_kind_of_response_carries_the_headers(harness: ApiHarness) -> None:
    staff = harness.headers("logistics")
    responses = {
        "health": harness.client.get("/healthz"),
        "dashboard page": harness.client.get("/dashboard"),
        "auditor page": harness.client.get("/auditor"),
        "static script": harness.client.get("/static/verify.js"),
        "json": harness.client.get("/alerts", headers=staff),
        "401": harness.client.get("/auth/me"),
        "404": harness.client.get("/no/such/page"),
        "422": harness.client.get("/alerts", headers=staff, params={"state": "closed"}),
        "openapi": harness.client.get("/openapi.json"),
    }
    for what, reply in responses.items():
        for name, value in COMMON.items():
            assert reply.headers.get(name) == value, (what, name, reply.headers)
        policy = reply.headers["content-security-policy"]
        assert policy == page_csp(harness.client.app.state.config.witnesses), what
        assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        assert "strict-transport-security" not in reply.headers  # plain-HTTP deployment


def test_the_docs_pages_admit_only_their_own_inline_scripts(harness: ApiHarness) -> None:
    for path in ("/docs", "/redoc"):
        reply = harness.client.get(path)
        policy = reply.headers["content-security-policy"]
        assert "unsafe-inline" not in policy, path
        # Each page's own inline block (Swagger's start script, ReDoc's style) is hashed.
        assert "'sha256-" in policy, (path, policy)
        assert "frame-ancestors 'none'" in policy
        assert int(reply.headers["content-length"]) == len(reply.content)


def test_an_https_deployment_gets_hsts(stack: Settings) -> None:
    with api_harness(stack, public_base_url="https://hub.example") as h:
        assert h.client.get("/healthz").headers["strict-transport-security"].startswith("max-age=")


def test_the_staff_page_runs_under_the_policy_and_an_injected_script_does_not(
    harness: ApiHarness,
) -> None:
    username, password = harness.user(["logistics"])
    with serve(harness.config) as base, chromium() as driver:
        sign_in(driver, f"{base}/dashboard", username, password)
        assert csp_violations(driver) == []  # the page's own scripts and styles all ran
        # Stored XSS as it would arrive: an inline script put into the page. It must not run.
        driver.execute_script(
            "const s = document.createElement('script');"
            " s.textContent = 'window.pwned = true';"
            " document.body.appendChild(s);"
        )
        assert driver.execute_script("return window.pwned === undefined")
        refused = csp_violations(driver)
        assert refused and "inline script" in refused[0]


def test_another_site_cannot_frame_the_pages(harness: ApiHarness) -> None:
    with serve(harness.config) as base:

        class Framer(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = f'<iframe id="f" src="{base}/dashboard"></iframe>'.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        with http_server(Framer, daemon_threads=True) as framer, chromium() as driver:
            driver.get(f"http://127.0.0.1:{framer.server_address[1]}/")

            def refused(_: object) -> list[str]:
                return [m for m in csp_violations(driver) if "frame-ancestors" in m]

            assert WebDriverWait(driver, 10).until(refused)
            driver.switch_to.frame(driver.find_element(By.ID, "f"))
            assert not driver.find_elements(By.ID, "sign-in")  # nothing of the page rendered
