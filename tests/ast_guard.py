"""One ``ast.parse`` at a time on Pythons whose AST constructor is not thread-safe.

CPython 3.11.0-3.11.7 and 3.12.0-3.12.1 keep the AST constructor's recursion counter in
interpreter-wide state; a garbage collection inside ``ast.parse`` can switch threads,
and a second thread parsing then corrupts the first one's count: ``SystemError: AST
constructor recursion depth mismatch`` (CPython gh-106905, fixed in 3.11.8 and 3.12.2).

The fuzz tests run hypothesis in a worker thread beside the event loop, and both
threads parse: hypothesis the reprs of the examples it prints and the source of newly
imported modules (for constants), the traceback module each failing line (3.11's
``^^^`` carets), pytest the source of a failure it reports. So the suite serializes
``ast.parse`` on those Pythons.
"""

from __future__ import annotations

import ast
import functools
import sys
import threading
from typing import Any

AFFECTED = (3, 11) <= sys.version_info[:3] < (3, 11, 8) or (3, 12) <= sys.version_info[:3] < (3, 12, 2)
_lock = threading.RLock()  # reentrant: a finalizer run by GC inside a parse may parse too


def install() -> None:
    """Wrap ``ast.parse`` in the lock (once; nothing to do on a fixed Python)."""
    if not AFFECTED or getattr(ast.parse, "serialized", False):
        return
    real = ast.parse

    @functools.wraps(real)
    def parse(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return real(*args, **kwargs)

    parse.serialized = True  # type: ignore[attr-defined]
    ast.parse = parse  # type: ignore[assignment]
