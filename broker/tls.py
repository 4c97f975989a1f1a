"""TLS for the edge itself: the web SDK only speaks ``https://`` and ``wss://``.

In production a reverse proxy usually terminates TLS in front of the edge (see
docs/operating.md); ``--certfile``/``--keyfile`` let the edge serve HTTPS and WSS on
its own (a small site, a staging box, a closed network).
"""

from __future__ import annotations

import os
import ssl

from .config import ConfigError, EdgeConfig


def server_context(config: EdgeConfig) -> ssl.SSLContext | None:
    """A server-side context from ``certfile``/``keyfile``; ``None`` when TLS is off.

    Raises:
        ConfigError: a file is missing or is not a PEM certificate/key pair.
    """
    if not config.certfile:
        return None
    for knob, path in (("certfile", config.certfile), ("keyfile", config.keyfile)):
        if not os.path.isfile(path):
            raise ConfigError(f"TLS: {knob} {path} not found")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.certfile, config.keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"TLS: cannot load {config.certfile} / {config.keyfile}: {exc}") from None
    return context


__all__ = ["server_context"]
