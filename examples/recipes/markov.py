"""The Markov-chain attribution model from transition counts (06-markov-transitions.sql).

    .venv/bin/band sql --format json "$(cat examples/recipes/06-markov-transitions.sql)" | .venv/bin/python examples/recipes/markov.py

Reads rows ``{"src", "dst", "transitions"}`` (a JSON array, or one JSON object a line) and
prints, per channel: the probability of a conversion from it, its removal effect and the
conversions it is credited with. Definitions: docs/tutorials/06-markov.md.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

START, CONVERSION, NULL = "(start)", "(conversion)", "(null)"


def probabilities(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """P(src → dst) = transitions(src → dst) / transitions(src → anything)."""
    counts: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        counts[str(row["src"])][str(row["dst"])] = float(row["transitions"])
    return {src: {dst: n / sum(out.values()) for dst, n in out.items()} for src, out in counts.items()}


def conversion_probability(p: dict[str, dict[str, float]], removed: str | None = None, rounds: int = 10_000) -> dict[str, float]:
    """P(reaching (conversion) | in state s) for every state, by value iteration.

    ``removed``: a channel taken out of the graph; every transition into it ends the path
    in (null) instead.
    """
    value = {s: 0.0 for s in p}
    value[CONVERSION], value[NULL] = 1.0, 0.0
    if removed is not None:
        value[removed] = 0.0
    for _ in range(rounds):
        change = 0.0
        for src, out in p.items():
            if src == removed:
                continue
            new = sum(share * value.get(dst, 0.0) for dst, share in out.items())
            change = max(change, abs(new - value[src]))
            value[src] = new
        if change < 1e-13:
            break
    return value


def model(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per channel: ``conversion_probability``, ``removal_effect``, ``conversions`` credited."""
    rows = list(rows)
    p = probabilities(rows)
    total_conversions = sum(float(r["transitions"]) for r in rows if r["dst"] == CONVERSION)
    base = conversion_probability(p)[START]
    channels = sorted(s for s in p if s != START)
    effects = {c: (1 - conversion_probability(p, removed=c)[START] / base) if base else 0.0 for c in channels}
    total_effect = sum(effects.values())
    values = conversion_probability(p)
    return {
        c: {
            "conversion_probability": values[c],
            "removal_effect": effects[c],
            "conversions": total_conversions * effects[c] / total_effect if total_effect else 0.0,
        }
        for c in channels
    }


def read_rows(text: str) -> list[dict[str, Any]]:
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    parsed = json.loads(text) if text.startswith("{") and "\n" not in text else None
    if isinstance(parsed, dict) and "rows" in parsed:
        return list(parsed["rows"])
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def main() -> int:
    rows = read_rows(sys.stdin.read())
    if not rows:
        print("markov.py: no transitions on stdin; pipe in the output of 06-markov-transitions.sql (see the docstring)", file=sys.stderr)
        return 1
    result = model(rows)
    print(f"{'channel':<24} {'P(conversion)':>13} {'removal effect':>14} {'conversions':>11}")
    for channel, r in sorted(result.items(), key=lambda kv: -kv[1]["conversions"]):
        print(f"{channel:<24} {r['conversion_probability']:>13.4f} {r['removal_effect']:>14.4f} {r['conversions']:>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
