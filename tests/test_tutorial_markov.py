"""06-markov-transitions.sql and markov.py against an exact solution from the events (docs/tutorials/06-markov.md)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import ModuleType

import pytest
import tutorial_truth as truth
from tutorial_store import RECIPES, band_sql_json_markov, events, query


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


def test_the_documented_pipe_band_sql_json_into_the_script() -> None:
    _, want = truth.markov(events())
    out = subprocess.run([sys.executable, str(RECIPES / "markov.py")], input=band_sql_json_markov(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[0] == "channel" and len(lines) == 1 + len(want)
    for line in lines[1:]:
        *name, _p_conv, effect, credited = line.split()
        channel = " ".join(name)
        assert float(effect) == pytest.approx(want[channel]["removal_effect"], abs=0.00005)
        assert float(credited) == pytest.approx(want[channel]["conversions"], abs=0.005)


def test_the_script_explains_empty_input() -> None:
    empty = subprocess.run([sys.executable, str(RECIPES / "markov.py")], input="", capture_output=True, text=True, timeout=60)
    assert empty.returncode == 1 and "06-markov-transitions.sql" in empty.stderr
