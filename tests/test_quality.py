"""The code's own checks, run with the tests: pyflakes-class lint and mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_no_unused_or_undefined_names() -> None:
    pytest.importorskip("ruff")
    result = run("ruff", "check", "--select", "F,E9", "--output-format", "concise", "band", "broker", "examples", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_band_and_broker_are_typed() -> None:
    pytest.importorskip("mypy")
    result = run("mypy", "band", "broker")
    assert result.returncode == 0, result.stdout + result.stderr
