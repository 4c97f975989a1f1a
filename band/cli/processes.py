"""Child processes the CLI and the tests start: how they die with us, how they stop."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

STOP_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1


def stop(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT_S, sig: int = signal.SIGTERM) -> int:
    """``sig`` (SIGTERM: stop cleanly), wait up to ``timeout`` s, then SIGKILL; the exit code.

    The one way band stops a child: ``band up`` its stack, the tests their servers.
    """
    if process.poll() is None:
        try:
            process.send_signal(sig)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


@contextmanager
def held(sig: int = signal.SIGTERM) -> Iterator[None]:
    """Children started inside the block begin with ``sig`` blocked (a child inherits
    the signal mask of the thread that starts it), so a stop sent while a band command
    is still starting its interpreter waits until the command can act on it
    (:func:`band._runtime.signals.stop_before_serving` unblocks it); without this, a
    SIGTERM in the first fraction of a second killed it with -15. Only for band commands:
    anything else would keep the signal blocked."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: nothing to hold
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {sig})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when its parent dies, even by
    SIGKILL (Linux ``PR_SET_PDEATHSIG``); ``None`` where that does not exist.

    A crashed ``band up`` must not leave NATS, the edge and services running. The signal
    follows the thread that started the child, so start children from a thread that
    lives as long as the parent (the main one). libc is loaded here, in the parent: the
    forked child runs nothing but one C call before exec.
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return preexec


__all__ = [
    "STOP_TIMEOUT_S",
    "die_with_parent",
    "held",
    "stop",
]
