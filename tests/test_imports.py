"""`import band` has no side effects; the documented import line works."""

from __future__ import annotations

import subprocess
import sys


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
        band.nonexistent  # noqa: B018
    except AttributeError as exc:
        assert "nonexistent" in str(exc)
    else:
        raise AssertionError("unknown names must raise AttributeError")
