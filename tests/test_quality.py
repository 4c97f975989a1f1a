"""The code's own checks, run with the tests: ruff with the project's rules, and mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_tree_is_clean_under_the_projects_ruff_rules() -> None:
    """The whole rule set of pyproject's [tool.ruff], not a subset: a new finding fails here."""
    pytest.importorskip("ruff")
    result = run("ruff", "check", "--no-cache", "--output-format", "concise", "band", "broker", "tests", "bench", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_band_and_broker_are_typed() -> None:
    pytest.importorskip("mypy")
    result = run("mypy", "band", "broker")
    assert result.returncode == 0, result.stdout + result.stderr
