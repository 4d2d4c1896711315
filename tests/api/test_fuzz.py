"""OpenAPI fuzzing with schemathesis: every operation of the app's /openapi.json, called by an
admin against a real uvicorn on loopback (fresh schema of its own), must never answer 5xx.

Bounded: a few examples per operation and no shrinking deadline, so the run stays within a
couple of minutes. The alert stream (an endless SSE response) is left out.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from api.auth import create_user
from api.config import ApiConfig
from tests.support.browser import serve
from tests.support.db import connector, migrated_schema
from tests.support.fuzz import fuzz_operation
from tracehub.config import Settings

pytestmark = pytest.mark.integration

MAX_EXAMPLES = int(os.environ.get("TRACEHUB_FUZZ_EXAMPLES", "12"))
_auth: dict[str, str] = {}


@pytest.fixture(scope="module")
def served(stack: Settings) -> Iterator[str]:
    """The API on a loopback port, on a migrated schema with an admin user signed in."""
    with migrated_schema(stack.postgres_dsn) as schema:
        config = ApiConfig(stack=stack, token_key=secrets.token_bytes(32), search_path=schema)
        password = secrets.token_urlsafe(12)
        with connector(stack.postgres_dsn, schema)() as conn:
            create_user(conn, "fuzz-admin", password, ["admin"])
        with serve(config) as base:
            reply = httpx.post(
                f"{base}/auth/token", data={"username": "fuzz-admin", "password": password}
            )
            reply.raise_for_status()
            _auth["Authorization"] = f"Bearer {reply.json()['access_token']}"
            yield base


def test_no_server_errors(served: str) -> None:
    """Every operation, valid and invalid inputs: no 5xx. Failures are collected, so one run
    reports every failing route (with a curl command to reproduce each)."""
    api = schemathesis.openapi.from_url(f"{served}/openapi.json").exclude(path="/alerts/stream")
    failures: list[str] = []
    operations = 0
    started = time.monotonic()
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_operation(operation, mode, served, _auth, MAX_EXAMPLES)
            except Unsatisfiable:
                # No invalid input exists for an operation without constrained parameters.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # a failed check (schemathesis raises
                # a BaseExceptionGroup) or a crash: report it and go on with the next operation
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:1500]}")
    elapsed = time.monotonic() - started
    print(f"fuzzed {operations} operations in {elapsed:.0f} s; {len(failures)} failing")
    assert operations > 40
    assert not failures, "\n\n".join(failures)
