"""06-markov-transitions.sql and markov.py against an exact solution from the events (docs/tutorials/06-markov.md)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import ModuleType

import pytest

import tutorial_truth as truth
from tutorial_store import RECIPES, events, query


def markov_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("markov_recipe", RECIPES / "markov.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_transitions_probabilities_and_removal_effects() -> None:
    counts, want = truth.markov(events())
    rows = query("06-markov-transitions.sql")
    assert {(r["src"], r["dst"]): int(r["transitions"]) for r in rows} == counts
    for r in rows:
        out_of = sum(n for (a, _), n in counts.items() if a == r["src"])
        assert float(r["probability"]) == pytest.approx(counts[(r["src"], r["dst"])] / out_of, abs=0.00005)
    got = markov_module().model(rows)
    assert set(got) == set(want)
    for channel, values in want.items():
        for key, value in values.items():
            assert got[channel][key] == pytest.approx(value, abs=1e-9), (channel, key)
    assert sum(v["conversions"] for v in got.values()) == pytest.approx(sum(n for (_, b), n in counts.items() if b == "(conversion)"))


def test_the_script_reads_band_sql_json_and_explains_empty_input() -> None:
    rows = query("06-markov-transitions.sql")
    import json

    out = subprocess.run([sys.executable, str(RECIPES / "markov.py")], input=json.dumps(rows), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split()[0] == "channel" and "direct" in out.stdout
    empty = subprocess.run([sys.executable, str(RECIPES / "markov.py")], input="", capture_output=True, text=True, timeout=60)
    assert empty.returncode == 1 and "06-markov-transitions.sql" in empty.stderr
