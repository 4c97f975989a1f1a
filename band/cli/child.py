"""One process of ``band up``'s stack or of ``band run --reload``: started with SIGTERM held
until it can act on it, its output prefixed by name (its last lines kept for a report),
stopped with SIGTERM then SIGKILL."""

from __future__ import annotations

import collections
import contextlib
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from . import processes

__all__ = ["Child", "Probe", "say"]

STOP_TIMEOUT_S = 15.0
LAST_LINES = 15
_print_lock = threading.Lock()

Probe = Callable[[], Awaitable[bool]]  # True once the process does its job


@dataclass
class Child:
    """One process of the stack: its output prefixed by name, its last lines kept."""

    name: str
    args: list[str]
    env: dict[str, str]
    ready: Probe | None = None  # None: ready once started
    process: subprocess.Popen[bytes] | None = None
    last: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=LAST_LINES))
    pump: threading.Thread | None = None

    def start(self, width: int) -> None:
        """Start it (from the main thread: see :func:`processes.die_with_parent`)."""
        # a band command unblocks SIGTERM once its handler is in place, so a stop sent while
        # it starts waits for that; any other program would never see the signal
        band_command = self.args[1:3] == ["-m", "band"]
        with processes.held(signal.SIGTERM) if band_command else contextlib.nullcontext():
            self.process = subprocess.Popen(
                self.args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches band up only; it stops children in order
                preexec_fn=processes.die_with_parent(),  # ...and if band up dies, they follow
            )
        assert self.process.stdout is not None
        self.pump = threading.Thread(target=self._pump, args=(self.process.stdout, f"{self.name:>{width}} | "), daemon=True)
        self.pump.start()

    def _pump(self, stream: IO[bytes], prefix: str) -> None:
        with stream:  # closed when the child's output ends, so a restart leaks no pipe
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.last.append(line)
                say(prefix + line)
        assert self.process is not None
        say(f"{prefix}exited with {self.process.wait()}")

    restarting: bool = False  # inside replacing(): its old process may be gone already

    @property
    def exited(self) -> bool:
        return not self.restarting and self.process is not None and self.process.poll() is not None

    @contextlib.contextmanager
    def replacing(self) -> Iterator[None]:
        """Stop and start it again inside the block: meanwhile it does not count as exited,
        so ``band up`` still starting the rest of the stack does not take a ``--reload``
        restart for a service that died during start (and stop everything)."""
        self.restarting = True
        try:
            yield
        finally:
            self.restarting = False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``; waits for its last output."""
        if self.process is not None:
            processes.stop(self.process, STOP_TIMEOUT_S)
        if self.pump is not None:
            self.pump.join(2)

    def report(self) -> str:
        """Why it is gone: the exit code and its last lines."""
        if self.pump is not None:
            self.pump.join(2)  # its last output, still in the pipe
        code = self.process.returncode if self.process is not None else None
        lines = "\n".join(f"    {line}" for line in self.last) or "    (no output)"
        return f"{self.name} exited with {code} during start; its last lines:\n{lines}"


def say(line: str, stream: IO[str] | None = None) -> None:
    """One whole line on stdout (or ``stream``), never interleaved with a child's."""
    out = stream or sys.stdout
    with _print_lock:
        out.write(line + "\n")
        out.flush()
