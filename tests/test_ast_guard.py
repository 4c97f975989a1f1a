"""The suite survives two threads parsing Python at once (see ast_guard)."""

from __future__ import annotations

import ast
import sys
import threading

import ast_guard
import pytest


class Garbage:
    """A cycle with a finalizer: collecting it runs Python code, a chance to switch threads."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        sum(range(100))


@pytest.mark.skipif(not ast_guard.AFFECTED, reason="this Python's AST constructor is thread-safe")
def test_two_threads_parse_at_once_without_system_error() -> None:
    source = "x = " + "[" * 120 + "]" * 120 + "\ny = " + "+".join(["1"] * 500)
    errors: list[str] = []

    def parse_many() -> None:
        for _ in range(30):
            garbage = [Garbage() for _ in range(30)]
            del garbage
            try:
                ast.parse(source)
            except SystemError as exc:  # "AST constructor recursion depth mismatch"
                errors.append(str(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=parse_many) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]
