"""Query-string cost: the edge's qs-style reader against the standard library, in one run.

    python bench/bench_qs.py [--seconds 2]

The edge reads every hit's query string (and urlencoded bodies) as Rockstat front's
``qs.parse`` did. Bracket-free text (pixels, links, most webhooks) takes a fast path on
``urllib.parse.parse_qsl``; text with brackets (the web SDK's image transport) goes to
``qs-codec``. Prints microseconds per parse and each ratio to ``dict(parse_qsl(...))``
measured in the same run; absolute numbers vary with the machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from broker.qs import FORM, QUERY, parse

CASES = {
    "pixel/link query": "utm_source=newsletter&utm_medium=email&utm_campaign=winter&to=https%3A%2F%2Fshop.example%2F",
    "SDK image query": "service=track&name=page&projectId=0&uid=6462464730849083392&data[target][tag]=a&user[ts]=1700000000000"
                       "&user[tz]=Europe%2FBerlin&sess[num]=1&sess[pageNum]=2&sess[eventNum]=0&sess[type]=direct",
}


def per_call(fn: Callable[[], Any], seconds: float) -> float:
    """Microseconds per call, best of three rounds."""
    best = float("inf")
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3:
            for _ in range(200):
                fn()
            n += 200
        best = min(best, elapsed / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    print(f"{'case':<20} {'stdlib µs':>10} {'query µs':>10} {'ratio':>7} {'form µs':>10} {'ratio':>7}")
    for name, text in CASES.items():
        base = per_call(lambda text=text: dict(parse_qsl(text, keep_blank_values=True)), args.seconds)
        query = per_call(lambda text=text: parse(text, QUERY, max_fields=1000, max_depth=32), args.seconds)
        form = per_call(lambda text=text: parse(text, FORM, max_fields=1000, max_depth=32), args.seconds)
        print(f"{name:<20} {base:>10.2f} {query:>10.2f} {query / base:>7.2f} {form:>10.2f} {form / base:>7.2f}")


if __name__ == "__main__":
    main()
