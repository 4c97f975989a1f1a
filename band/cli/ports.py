"""TCP ports on this machine: pick a free one, see whether one answers or is taken."""

from __future__ import annotations

import errno
import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Something accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_in_use(port: int, host: str = "0.0.0.0") -> bool:
    """Binding ``host:port`` would fail because another socket holds it.

    Asked the way a server binds (``SO_REUSEADDR``, as aiohttp does), so a port left in
    TIME_WAIT by a stopped server is free, and one taken on any address is not.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


__all__ = [
    "free_port",
    "port_in_use",
    "port_open",
]
