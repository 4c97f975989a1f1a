"""``--reload`` while developing: restart a service's process when one of its files changes.

``band run --reload PATH`` runs the service as a child process and ``band up --reload``
watches every service it started; a change restarts only the service it belongs to,
within a second (watchfiles). Before restarting, every Python file of that service is
compiled (not run): on a syntax error the running process is left alone and the error
printed, so a half-saved file never takes a working service down.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from .child import Child

DEBOUNCE_MS = 150  # changes this close together are one change (an editor's save is several writes)
# A service's code and config; data it writes next to itself (SQLite files, logs) restarts nothing.
SOURCE_SUFFIXES = frozenset({".py", ".yml", ".yaml", ".json", ".toml", ".cfg", ".ini", ".env", ".txt", ".sql", ".html", ".j2"})


def _root(service: Path) -> Path:
    """The directory watched for ``service`` (a directory, or a .py file's folder)."""
    return service if service.is_dir() else service.parent


def _belongs(changed: Path, service: Path) -> bool:
    if service.is_dir():
        return changed == service or service in changed.parents
    return changed == service


def python_files(service: Path) -> list[Path]:
    """The service's own Python files (a virtualenv or cache inside is not its code)."""
    if service.is_file():
        return [service]
    skip = {"__pycache__", ".venv", "venv", ".git", "node_modules"}
    return sorted(p for p in service.rglob("*.py") if not skip & set(p.relative_to(service).parts))


def syntax_error(service: Path) -> str | None:
    """The first syntax error in ``service``'s Python files, as Python prints it; ``None`` if all compile."""
    for path in python_files(service):
        try:
            compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
        except OSError:
            continue  # deleted between the event and now: the next event tells
    return None


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class Reloader:
    """Watches the services' files; restarts the child a change belongs to."""

    def __init__(self, services: list[tuple[Path, Child]], width: int) -> None:
        self._services = [(path.resolve(), child) for path, child in services]
        self._width = width

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set."""
        try:
            from watchfiles import DefaultFilter, awatch
        except ImportError:
            _say("--reload needs watchfiles: pip install 'band[dev]' (running without reload)")
            return
        roots = sorted({_root(path) for path, _ in self._services})
        default = DefaultFilter()  # editors' swap files, caches, .git, virtualenvs

        def source(change: Any, path: str) -> bool:
            return Path(path).suffix in SOURCE_SUFFIXES and default(change, path)

        async for changes in awatch(*roots, stop_event=stop, debounce=DEBOUNCE_MS, step=50, watch_filter=source):
            changed = [Path(p) for _, p in changes]
            for path, child in self._services:
                touched = [c for c in changed if _belongs(c, path)]
                if touched and not stop.is_set():
                    await self._reload(path, child, touched[0])

    async def _reload(self, path: Path, child: Child, changed: Path) -> None:
        problem = syntax_error(path)
        name = child.name
        if problem is not None:
            _say(f"{name:>{self._width}} | not reloaded: {problem}\n"
                 f"{name:>{self._width}} | the running process is unchanged; fix the file and save again")
            return
        _say(f"{name:>{self._width}} | {changed.name} changed: restarting")
        with child.replacing():  # band up may still be starting the rest of the stack
            await asyncio.to_thread(child.stop)
            child.start(self._width)  # in this (the main) thread: see processes.die_with_parent


async def _run(path: Path, args: list[str]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    name = path.stem if path.is_file() else path.name  # noqa: ASYNC240 - one stat of a local path, once at start
    child = Child(name, [sys.executable, "-m", "band", "run", str(path), *args], {**os.environ, "PYTHONUNBUFFERED": "1"})
    width = len(name)
    child.start(width)
    _say(f"{name:>{width}} | watching {_root(path)} for changes (Ctrl-C stops)")
    watcher = loop.create_task(Reloader([(path, child)], width).run(stop))
    try:
        await stop.wait()
    finally:
        await asyncio.to_thread(child.stop)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    return 0


def run(path: str | Path, url: str | None = None, name: str | None = None) -> int:
    """Entry point of ``band run --reload``; returns the exit code."""
    service = Path(path)
    if not service.exists():
        print(f"band run: {service}: no such file or directory", file=sys.stderr)
        return 2
    args = [*(["--nats", url] if url else []), *(["--name", name] if name else [])]
    return asyncio.run(_run(service, args))


__all__ = ["Reloader", "run", "syntax_error"]
