"""The /commerce operations fuzzed with schemathesis as the roles that reach their deeper code
(a buyer and a supplier of seeded organisations, an admin), against a real uvicorn on loopback
with a seeded schema: no input may produce a 5xx. (tests/api/test_fuzz.py fuzzes the whole API
as an admin without an organisation, which most commerce operations refuse early.)"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from api.auth import Principal, create_user, issue_token
from api.config import ApiConfig
from tests.support.browser import serve
from tests.support.commerce import commerce_config, seed
from tests.support.db import connector, migrated_schema
from tests.support.fuzz import fuzz_operation
from tracehub.config import Settings

pytestmark = pytest.mark.integration
MAX_EXAMPLES = 8


@pytest.fixture(scope="module")
def served(stack: Settings) -> Iterator[tuple[str, dict[str, str]]]:
    """The API on a loopback port over a seeded schema; bearer headers per role."""
    with migrated_schema(stack.postgres_dsn) as schema:
        key = secrets.token_bytes(32)
        config = ApiConfig(
            stack=stack,
            token_key=key,
            search_path=schema,
            extra={"commerce": commerce_config(timeout_s=2)},
        )
        tokens = {}
        with connector(stack.postgres_dsn, schema)() as conn:
            seed(conn)
            for role, org in (
                ("buyer", "buy-a"),
                ("supplier", "sup-a"),
                ("admin", None),
                ("logistics", "carrier"),
            ):
                user_id = create_user(
                    conn, f"fuzz-{role}", secrets.token_urlsafe(12), [role], org_id=org
                )
                principal = Principal(user_id, f"fuzz-{role}", frozenset({role}), org)
                tokens[role] = f"Bearer {issue_token(key, principal, 3600)}"
        with serve(config) as base:
            yield base, tokens


def test_commerce_operations_never_answer_5xx(served: tuple[str, dict[str, str]]) -> None:
    base, tokens = served
    api = schemathesis.openapi.from_url(f"{base}/openapi.json").include(path_regex="^/commerce")
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1
        for role, auth in tokens.items():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz_operation(operation, mode, base, {"Authorization": auth}, MAX_EXAMPLES)
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except Exception as exc:
                    failures.append(
                        f"{operation.label} as {role} [{mode.value}]: {str(exc)[:1200]}"
                    )
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
