"""``/lib.js``: the web SDK (or band's own tracker) with the visitor's uid configured in.

As Rockstat front served it: ``;window["rstat"]&&window["rstat"]('configure',{"initialUid":
"<uid>","urlMark":"band",…client_common});`` then the SDK file's bytes. The page's SDK
then sends that uid in every payload, so a first visit's parallel hits (which leave
before any cookie exists) and cross-site pages (where the browser never sends the
edge's cookie) keep one uid. The answer carries the uid, so nobody may cache it.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from .config import ConfigError, EdgeConfig
from .request import NATIVE_MARK

CONTENT_TYPE = "text/javascript; charset=utf-8"


def tracker_source() -> bytes:
    """band's own tracker (package data): a function the edge calls with the global's name."""
    return (resources.files("broker") / "tracker" / "rstat.js").read_bytes()


class LibJs:
    """The file to serve, read once at start; :meth:`body` adds the per-visitor prefix."""

    def __init__(self, config: EdgeConfig) -> None:
        self.global_name = json.dumps(config.lib_global)
        self.common: dict[str, Any] = dict(config.client_common)
        self.own_tracker = not config.lib_file
        if self.own_tracker:
            self.source = tracker_source()
        else:
            try:
                self.source = Path(config.lib_file).read_bytes()
            except OSError as exc:
                raise ConfigError(f"lib_file: cannot read {config.lib_file}: {exc.strerror}") from None

    def options(self, uid: str) -> dict[str, Any]:
        return {"initialUid": uid, "urlMark": NATIVE_MARK, **self.common}

    def body(self, uid: str) -> bytes:
        options = json.dumps(self.options(uid), separators=(",", ":"))
        g = self.global_name
        head = f";window[{g}]&&window[{g}]('configure',{options});".encode()
        if not self.own_tracker:
            return head + self.source
        return head + self.source.rstrip() + f"(window,document,{g},{options});\n".encode()


__all__ = ["CONTENT_TYPE", "LibJs", "tracker_source"]
