"""Generated events in a real store, and the recipes' SQL run on it.

The store's own code does the work: its config and table creation, its row builder, its
backend's insert and read-only select (band.demo.direct). chDB opens one data directory
per process, so the store lives in a child process, away from other tests' stores.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from band.demo import generate

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "examples" / "recipes"
START = dt.date(2026, 11, 1)
SEED, VISITORS, DAYS = 1, 500, 14  # the docs' samples use these

_CHILD = """
import datetime as dt, json, sys
from pathlib import Path
from band.demo import generate
from band.demo.direct import insert
from band.store.backend import open_backend
from band.store.config import load
seed, visitors, days, start, data = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), dt.date.fromisoformat(sys.argv[4]), Path(sys.argv[5])
config = load()
backend = open_backend("", data)
insert(backend, config, generate(seed, visitors, days, start))
out = {name: backend.select(Path(name).read_text(), readonly=True) for name in sys.argv[6:]}
print(json.dumps(out))
"""


def events(seed: int = SEED, visitors: int = VISITORS, days: int = DAYS) -> list[dict[str, Any]]:
    return _events(seed, visitors, days)


@functools.lru_cache(maxsize=4)
def _events(seed: int, visitors: int, days: int) -> list[dict[str, Any]]:
    return generate(seed, visitors, days, START)


@functools.lru_cache(maxsize=8)
def _run(seed: int, visitors: int, days: int, files: tuple[str, ...]) -> dict[str, Any]:
    pytest.importorskip("band.store.rows")
    pytest.importorskip("chdb")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(seed), str(visitors), str(days), START.isoformat(), str(Path(tmp) / "store"), *files],
            cwd=tmp, capture_output=True, text=True, timeout=600,
        )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(json.loads(proc.stdout))


def query(recipe: str, seed: int = SEED, visitors: int = VISITORS, days: int = DAYS) -> list[dict[str, Any]]:
    """The rows of ``examples/recipes/<recipe>`` over the generated events, in the store."""
    every = tuple(sorted(str(p) for p in RECIPES.glob("*.sql")))
    return list(_run(seed, visitors, days, every)[str(RECIPES / recipe)]["rows"])
