"""Staff pages under test: the app served by uvicorn on loopback, headless Chromium, sign-in."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from api.app import create_app
from api.config import ApiConfig
from tests.support.processes import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@contextmanager
def serve(config: ApiConfig) -> Iterator[str]:
    """The app under uvicorn on a loopback port (a thread of this process)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextmanager
def chromium(
    extra_flags: tuple[str, ...] = (), prefix: str = "tracehub-dash-", network_log: bool = False
) -> Iterator[webdriver.Chrome]:
    """Headless Debian Chromium with a throw-away profile (``extra_flags`` added; with
    ``network_log``, the DevTools network events are kept for :func:`requested_urls`)."""
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "Debian's chromium and chromium-driver are needed (scripts/install-system-deps.sh)"
    )
    profile = tempfile.mkdtemp(prefix=prefix)
    options = Options()
    options.binary_location = str(CHROMIUM)
    # The console log, so tests can read Content-Security-Policy violations (csp_violations).
    logs = {"browser": "ALL", **({"performance": "ALL"} if network_log else {})}
    options.set_capability("goog:loggingPrefs", logs)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        *extra_flags,
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def sign_in(driver: webdriver.Chrome, url: str, username: str, password: str) -> None:
    driver.get(url)
    wait = WebDriverWait(driver, 10)
    wait.until(lambda d: d.find_element(By.ID, "sign-in").is_displayed())
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#sign-in button").click()
    wait.until(lambda d: d.find_element(By.ID, "app").is_displayed())


def csp_violations(driver: webdriver.Chrome) -> list[str]:
    """The Content-Security-Policy refusals in the console since the last call (Chromium logs
    each blocked script, style, image or fetch as a SEVERE "Refused to ..." message)."""
    return [
        str(entry["message"])
        for entry in driver.get_log("browser")
        if "Content Security Policy" in str(entry.get("message", ""))
    ]


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """Every URL the browser asked for since the last call (DevTools ``Network.requestWillBeSent``
    events of the performance log; the driver needs ``network_log=True``)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(str(message["params"]["request"]["url"]))
    return urls
