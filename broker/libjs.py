"""``/lib.js``: the web SDK (or band's own tracker) with the visitor's uid configured in.

As Rockstat front served it: ``;window["rstat"]&&window["rstat"]('configure',{"initialUid":
"<uid>","urlMark":"band",…client_common});`` then the SDK file's bytes. The page's SDK
then sends that uid in every payload, so a first visit's parallel hits (which leave
before any cookie exists) and cross-site pages (where the browser never sends the
edge's cookie) keep one uid.

The answer carries the visitor's uid, so only that visitor's browser may keep it:
``Cache-Control: private`` for ``lib_max_age_s``, ``Vary: Cookie`` (a browser whose cookie
changed asks again), and an ETag of the file's version and the uid for the revalidation.
The SDK is 10-250 KB, so it is gzipped for browsers that accept it; the file part is
compressed once at start and only the few hundred bytes around it per answer (the
parts are joined as one gzip stream: each deflate part ends on a byte boundary).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from importlib import resources
from pathlib import Path
from typing import Any

from .config import ConfigError, EdgeConfig
from .request import NATIVE_MARK

CONTENT_TYPE = "text/javascript; charset=utf-8"
# magic, deflate, no flags, no mtime, no extra flags, OS unknown (RFC 1952)
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def tracker_source() -> bytes:
    """band's own tracker (package data): a function the edge calls with the global's name."""
    return (resources.files("broker") / "tracker" / "rstat.js").read_bytes()


def _deflated(data: bytes, level: int, final: bool) -> bytes:
    """Raw deflate of ``data``: ending the stream, or flushed to a byte boundary so that
    another part can follow it."""
    packer = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``q=0`` refuses it)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False


class LibJs:
    """The file to serve, read and compressed once at start; :meth:`body` and :meth:`gzip`
    add the per-visitor parts."""

    def __init__(self, config: EdgeConfig) -> None:
        self.global_name = json.dumps(config.lib_global)
        self.common: dict[str, Any] = dict(config.client_common)
        if config.consent == "required":  # the tracker keeps nothing on the device until the visitor grants
            self.common.setdefault("consent", "required")
        self.max_age_s = config.lib_max_age_s
        self.own_tracker = not config.lib_file
        if self.own_tracker:
            source = tracker_source().rstrip()
        else:
            try:
                source = Path(config.lib_file).read_bytes()
            except OSError as exc:
                raise ConfigError(f"lib_file: cannot read {config.lib_file}: {exc.strerror}") from None
        self.source = source
        self._source_deflated = _deflated(source, 9, final=False)
        settings = json.dumps([config.lib_global, self.common], sort_keys=True).encode()
        self.version = hashlib.blake2b(source + b"\0" + settings, digest_size=8).hexdigest()

    def options(self, uid: str) -> dict[str, Any]:
        """The tracker's options; no uid (``""``: a visitor without consent) configures ``0``."""
        return {"initialUid": uid or 0, "urlMark": NATIVE_MARK, **self.common}

    def _around(self, uid: str) -> tuple[bytes, bytes]:
        """What goes before and after the file for ``uid``."""
        options = json.dumps(self.options(uid), separators=(",", ":"))
        g = self.global_name
        head = f";window[{g}]&&window[{g}]('configure',{options});".encode()
        tail = f"(window,document,{g},{options});\n".encode() if self.own_tracker else b""
        return head, tail

    def body(self, uid: str) -> bytes:
        head, tail = self._around(uid)
        return head + self.source + tail

    def gzip(self, uid: str) -> bytes:
        """The same bytes as :meth:`body`, gzipped: the file's part was compressed at start."""
        head, tail = self._around(uid)
        crc = zlib.crc32(tail, zlib.crc32(self.source, zlib.crc32(head)))  # ~0.1 ms for 250 KB
        size = len(head) + len(self.source) + len(tail)
        return b"".join((_GZIP_HEADER, _deflated(head, 6, final=False), self._source_deflated,
                         _deflated(tail, 6, final=True), struct.pack("<II", crc, size & 0xFFFFFFFF)))

    def etag(self, uid: str) -> str:
        return f'"{self.version}.{uid}"'


__all__ = ["CONTENT_TYPE", "LibJs", "accepts_gzip", "tracker_source"]
