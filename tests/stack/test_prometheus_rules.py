"""The stack's alert rules, checked and unit-tested with promtool (built beside Prometheus by
network/build.sh): each alert fires when its condition holds for its `for:`, and not before."""

from __future__ import annotations

import subprocess

from tracehub.config import PROJECT_DIR

PROMTOOL = PROJECT_DIR / ".bin" / "promtool"
RULES = PROJECT_DIR / "network" / "prometheus" / "rules"
CASES = PROJECT_DIR / "tests" / "stack" / "prometheus" / "rules_test.yml"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: run `make binaries`"
    return subprocess.run(
        [str(PROMTOOL), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_rules_are_valid() -> None:
    files = sorted(str(p) for p in RULES.glob("*.yml"))
    assert files
    checked = _promtool("check", "rules", *files)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout, checked.stdout


def test_each_alert_fires_when_its_condition_holds() -> None:
    tested = _promtool("test", "rules", str(CASES))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
