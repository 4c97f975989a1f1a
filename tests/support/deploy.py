"""Helpers for the deployment tests (nats.conf, TLS, cluster, compose); no tests here.

They run the repository's real ``nats.conf`` with the wheel's nats-server: every
password variable the file references gets a fresh random value in the
environment, ports are free ones, the JetStream store is a temporary directory.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client

from band.cli.natsserver import NatsServer, find_binary
from band.cli.ports import free_port
from support.poll import wait_for as eventually

REPO = Path(__file__).resolve().parents[2]
NATS_CONF = REPO / "nats.conf"
DEPLOY = REPO / "deploy"

_USER = re.compile(r"user:\s*([A-Za-z0-9_\-]+)\s*,\s*password:\s*\$([A-Za-z0-9_]+)")


def conf_users(path: Path = NATS_CONF) -> dict[str, str]:
    """``user -> password variable`` for every user of a conf file (comments skipped)."""
    text = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    return {user: var for user, var in _USER.findall(text)}


def conf_variables(path: Path = NATS_CONF) -> list[str]:
    """Every ``$VARIABLE`` the conf takes from the environment (unquoted, not defined in it)."""
    text = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    text = re.sub(r'"[^"]*"', '""', text)  # quoted strings are literal ("$SRV.>")
    defined = set(re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*[:=]", text, re.M))
    return sorted({v for v in re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text) if v not in defined})


def password_env(path: Path = NATS_CONF) -> dict[str, str]:
    """A fresh random value for each password variable of the conf.

    Each starts with letters: nats-server parses an environment value like a conf
    value, so an all-digit password would become a number (or overflow).
    """
    return {var: "pw" + secrets.token_hex(12) for var in conf_variables(path)}


def url(user: str, env: dict[str, str], port: int, scheme: str = "nats", host: str = "127.0.0.1") -> str:
    """``nats://user:password@host:port`` with the password the conf expects for ``user``."""
    return f"{scheme}://{user}:{env[conf_users()[user]]}@{host}:{port}"


EVENTWRITER = REPO / "examples" / "eventwriter"  # the example with a durable listener (svc_eventwriter)


async def provision_as_admin(env: dict[str, str], port: int, *services: Path) -> None:
    """``band provision`` with the operator's credential, as a deployment does before its
    services start: the shipped nats.conf lets no service create its consumers."""
    from band.cli.provision import provision

    assert await provision(list(services) or [EVENTWRITER], url("admin", env, port), 10) == 0


def own_consumer_create(violation: str, user: str = "svc_eventwriter") -> bool:
    """A server log line for ``user``'s refused create of one of its consumers: what a durable
    listener tries once at start before it uses the consumer the operator provisioned."""
    name = user.removeprefix("svc_")
    return f"user:{user}" in violation and re.search(rf'"\$JS\.API\.CONSUMER\.(DURABLE\.)?CREATE\.BAND_EVENTS\.{name}_', violation) is not None


def inbox_of(user: str) -> str:
    """The inbox prefix band's connect gives ``user``'s client and nats.conf grants it:
    ``_INBOX_band-edge`` for the edge, ``_INBOX_<name>`` for ``svc_<name>``."""
    return "_INBOX_band-edge" if user == "edge" else "_INBOX_" + user.removeprefix("svc_")


def check_conf(path: Path, env: dict[str, str], unset: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """``nats-server -t -c path``: the binary's own config check."""
    full = {k: v for k, v in {**os.environ, **env}.items() if k not in unset}
    return subprocess.run(
        [find_binary(), "-t", "-c", str(path)],
        env=full,
        capture_output=True,
        text=True,
        timeout=30,
    )


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set variables for the block (child processes inherit them), then restore."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


STORE_DIR = '"/data/jetstream"'


def copy_conf(tmp: Path, store_dir: Path, files: tuple[str, ...] = ("nats.conf",)) -> Path:
    """Copy repository conf files under ``tmp`` (same layout, so includes resolve),
    with the JetStream ``store_dir`` moved to ``store_dir``; returns the first copy."""
    out = []
    for rel in files:
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        text = (REPO / rel).read_text()
        if rel == "nats.conf":
            assert STORE_DIR in text, "nats.conf should keep JetStream in /data/jetstream"
            text = text.replace(STORE_DIR, f'"{store_dir}"')
        target.write_text(text)
        out.append(target)
    return out[0]


@contextmanager
def conf_server(tmp: Path, env: dict[str, str], files: tuple[str, ...] = ("nats.conf",), extra_args: list[str] | None = None) -> Iterator[NatsServer]:
    """The repository's conf (``files[0]``, which may include the others) with free
    client and monitoring ports and its JetStream store in ``tmp``."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = copy_conf(tmp / "conf", tmp / "js", files)
    server = NatsServer(
        store_dir=tmp / "js",
        config=config,
        monitor_port=free_port(),
        extra_args=extra_args or [],
        log_file=tmp / "nats-server.log",
    )
    with environment(env):
        with server:
            yield server


class Recorder:
    """A client's asynchronous errors (permission violations arrive here)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    async def record(self, exc: Exception) -> None:
        self.errors.append(str(exc))

    def saw(self, *fragments: str) -> bool:
        """Some error contains every fragment (case-insensitive, as servers vary)."""
        return any(all(f.lower() in e.lower() for f in fragments) for e in self.errors)


async def client(server_url: str, recorder: Recorder | None = None, **options: Any) -> Client:
    """A plain nats-py client that does not retry (a refusal raises at once)."""
    return await nats.connect(
        server_url,
        error_cb=(recorder or Recorder()).record,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=2,
        **options,
    )


async def request_refused(nc: Client, recorder: Recorder, subject: str, payload: bytes = b"", timeout: float = 0.5) -> None:
    """A request the server dropped as a permissions violation: the violation reached the
    client, and no answer came (an answer, even a JetStream error, means it was let in)."""
    try:
        reply = await nc.request(subject, payload, timeout=timeout)
    except nats.errors.TimeoutError:
        pass
    else:
        raise AssertionError(f"{subject} was let in and answered: {reply.data[:300]!r}")
    await eventually(lambda: recorder.saw("Permissions Violation", f'Publish to "{subject}"'),
                     what=f"permissions violation for {subject}: {recorder.errors}")


async def publish_refused(nc: Client, recorder: Recorder, subject: str, payload: bytes = b"") -> None:
    """A plain publish (no answer expected, an ack) the server refused as a permissions violation."""
    await nc.publish(subject, payload)
    await eventually(lambda: recorder.saw("Permissions Violation", f'Publish to "{subject}"'),
                     what=f"permissions violation for {subject}: {recorder.errors}")
