"""`import band` has no side effects; the documented import line works."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


def test_import_band_does_nothing() -> None:
    code = """
import asyncio, os, socket, sys, threading
opened = []
real_socket = socket.socket
class Spy(real_socket):
    def __init__(self, *a, **k):
        opened.append(a); super().__init__(*a, **k)
socket.socket = Spy
threads = threading.active_count()
import band, broker
from band import settings, logger, expose, worker, cleanup, response, rpc, scheduler, blocking, redis_factory
assert opened == [], opened
assert threading.active_count() == threads
try:
    asyncio.get_running_loop(); raise SystemExit('a loop is running')
except RuntimeError:
    pass
assert asyncio.get_event_loop_policy()._local._loop is None, 'an event loop was created'
assert type(rpc).__name__ == 'RPC' and type(settings).__name__ == 'Settings'
print('ok')
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_unknown_name_raises() -> None:
    import band

    try:
        _ = band.nonexistent
    except AttributeError as exc:
        assert "nonexistent" in str(exc)
    else:
        raise AssertionError("unknown names must raise AttributeError")


def _private_imports(root: Path, package: str) -> list[str]:
    """``module:line name`` for every import of ``band._core`` / ``band._runtime`` under ``package``."""
    found: list[str] = []
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        here = parts[:-1]  # the package a relative import starts from
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = list(here[: len(here) - node.level + 1]) if node.level else []
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
                names = [module] + [f"{module}.{alias.name}" for alias in node.names]
            for name in names:
                if name.startswith(("band._core", "band._runtime")):
                    found.append(f"{path.relative_to(root)}:{node.lineno} {name}")
                    break
    return found


def test_the_edge_and_the_panel_import_only_public_band_names() -> None:
    """broker/ and band.panel build on ``band.runtime``; band's private layout may change under them."""
    root = Path(__file__).resolve().parents[1]
    found = _private_imports(root, "broker") + _private_imports(root, "band/panel")
    assert found == [], "import these from band.runtime instead: " + ", ".join(found)
