"""``band schemas``: the event schemas the edge and the store read, listed and validated.

The folder is ``--dir``, else ``$BAND_SCHEMAS``, else ``./schemas`` (the edge's and the
store's default). Every file is compiled as the edge compiles it at start, so a schema
this command accepts is one the edge and the store accept.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import ConfigError
from .parser import Commands


def run(args: argparse.Namespace) -> int:
    """List the folder's schemas (key, version, mode, file); exit 2 naming a file that is not valid."""
    from .. import schemas

    folder = args.dir or os.environ.get("BAND_SCHEMAS") or schemas.DEFAULT_DIR
    try:
        found = schemas.load(folder)
    except ConfigError as exc:
        print(f"band schemas: {exc}", file=sys.stderr)
        return 2
    if not os.path.isdir(folder):
        print(f"no schema folder {folder!r}: no event is checked (create it with one <key>.yml per key, see docs/schemas.md)")
        return 0
    if not len(found):
        print(f"no schemas in {folder}: no event is checked")
        return 0
    rows = [("key", "version", "mode", "file")] + [(s.key, str(s.version), s.mode, str(s.file)) for s in found]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    print(f"{len(found)} schemas, all valid")
    return 0


def register(commands: Commands) -> None:
    """``band schemas [--dir DIR]`` (registered beside ``band store``, see band/store/command.py)."""
    parser = commands.add("schemas", "[--dir DIR]", "list the event schemas (key, version, mode, file) and check they are valid", run)
    parser.add_argument("--dir", help="the schema folder (default: $BAND_SCHEMAS, else ./schemas)")


__all__ = ["register", "run"]
