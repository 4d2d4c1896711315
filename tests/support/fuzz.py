"""Schemathesis set-up shared by the OpenAPI fuzz tests: one operation, one generation mode,
a bounded number of reproducible examples, the "no 5xx" check."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error


def fuzz_operation(
    operation: Any, mode: GenerationMode, base: str, headers: dict[str, str], max_examples: int
) -> None:
    """Call ``operation`` on ``base`` with generated cases; raises on a 5xx (or a crash)."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        # a copy per call: the request must not see headers an earlier case changed
        case.call_and_validate(
            base_url=base, headers=dict(headers), checks=[not_a_server_error], timeout=30
        )

    run()
