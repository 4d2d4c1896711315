"""Shared fixtures. Integration tests run against the real local stack (`make up`); a missing
service fails the test with the component's name rather than skipping it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tracehub.config import PROJECT_DIR, Settings
from tracehub.ipfs import KuboClient


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


@pytest.fixture()
def kubo(stack: Settings) -> Iterator[KuboClient]:
    with KuboClient(stack.ipfs_api) as client:
        yield client
