"""How to type one of this environment's commands (band, pytest) in a message.

After ``make run`` nothing is on ``PATH``: ``.venv/bin/band`` is. A message that says
``band run x`` would send a user to some other ``band``, or to none.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def spell(tool: str) -> str:
    """``tool`` when ``PATH`` finds this environment's one, else its path (relative when below here)."""
    path = Path(sys.executable).parent / tool
    if not path.exists():
        return tool
    found = shutil.which(tool)
    if found and os.path.samefile(found, path):
        return tool
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path.absolute())


__all__ = [
    "spell",
]
