"""Child processes the CLI and the tests start: how they die with us, how they stop."""

from __future__ import annotations

import signal
import subprocess
from typing import Any, Callable

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
