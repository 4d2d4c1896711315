"""Shared fixtures. Integration tests run against the real local stack (`make up`); a missing
service fails the test with the component's name rather than skipping it.

Each area (tests/<area>/) has a conftest.py for the fixtures its test modules share; helpers
that are not fixtures live in tests/support/. A test that needs the stack (the `stack`
fixture, directly or through another fixture) is marked `integration` here, whatever its
module says, so `-m 'not integration'` never reaches for a service."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tracehub.config import PROJECT_DIR, Settings

if TYPE_CHECKING:
    from tests.support.api import ApiHarness


# The kill tests of the replicated network run under `make test-ha` (TRACEHUB_TOPOLOGY=ha, its
# own network); the everyday single-topology run leaves them out.
collect_ignore = [] if Settings.from_env().fabric_topology == "ha" else ["ha"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """End the broker sessions of the gateway consumers the tests admitted
    (tests/support/mqtt.py ``ADMITTED``): stopped, they would keep a share of the readings."""
    from tests.support.mqtt import ADMITTED, end_session

    for settings, service in ADMITTED:
        try:
            end_session(settings, service, timeout=3)
        except OSError:
            continue  # its broker is gone (a test's own), and its sessions with it


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """The local stack, checked healthy once per session."""
    result = subprocess.run(
        ["bash", str(PROJECT_DIR / "network" / "stack.sh"), "status"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"the local stack is not healthy (run `make up`):\n{result.stdout}{result.stderr}"
        )
    return settings


@pytest.fixture(scope="module")
def api(stack: Settings) -> Iterator[ApiHarness]:
    """The API in-process on a migrated schema of the test module's own, shared by its tests
    (tests/support/api.py)."""
    from tests.support.api import api_harness  # here, so a test that needs no API never loads it

    with api_harness(stack) as harness:
        yield harness
