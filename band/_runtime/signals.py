"""SIGTERM and SIGINT for ``band run`` and ``band edge``: stop in every state, promptly.

Shutdown is cancellation. While the process only gets ready (connecting to a NATS
that is not there, creating consumers) a signal cancels it outright: there is nothing
to finish. While it serves (inside :meth:`Signals.graceful`) the first signal asks
for a graceful stop (drain, finish in-flight work, cleanups); a second signal, or one
that arrives while it drains, cancels whatever is still running.

    async with Signals() as signals:
        async with running(app):                 # a signal here cancels the connect
            with signals.graceful():
                await signals.requested.wait()   # the first signal ends this wait
        ...                                      # draining: another signal cancels
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_before_serving() -> None:
    """Until :class:`Signals` takes over inside the loop, SIGTERM ends the process with
    exit code 0: a process told to stop while it still imports its code has nothing to
    finish, and the default action would kill it with 143 (``band up`` stopping a stack
    whose other service failed to start sees exactly that).

    ``band up`` starts its children with SIGTERM blocked (:func:`band.cli.processes.held`),
    so one sent before this line ran waits instead of killing the interpreter as it
    starts; it is unblocked here, once the handler is in place, and handled then."""
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if hasattr(signal, "pthread_sigmask"):  # POSIX; elsewhere nothing was held
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


class Signals:
    """Signal handlers for the current task, installed on enter and removed on exit."""

    def __init__(self, requested: asyncio.Event | None = None) -> None:
        self.requested = requested or asyncio.Event()  # a stop was asked for (a signal, or the caller)
        self.received = 0
        self._task: asyncio.Task[object] | None = None
        self._installed: list[int] = []
        self._graceful = False
        self._cancelled = False

    async def __aenter__(self) -> Signals:
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            try:
                loop.add_signal_handler(sig, self._on_signal)
                self._installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()
        if self._cancelled and kind is asyncio.CancelledError and self._task is not None:
            self._task.uncancel()
            return True  # our own cancellation: a clean stop
        return False

    @contextmanager
    def graceful(self) -> Iterator[None]:
        """Serving: a first signal sets :attr:`requested` instead of cancelling."""
        self._graceful = True
        try:
            yield
        finally:
            self._graceful = False

    def _on_signal(self) -> None:
        self.received += 1
        if self._graceful and self.received == 1:
            self.requested.set()
            return
        self.requested.set()
        if self._task is not None and not self._cancelled:
            self._cancelled = True
            self._task.cancel()


__all__ = ["SIGNALS", "Signals"]
