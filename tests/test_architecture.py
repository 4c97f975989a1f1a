"""docs/architecture.md names every file of band/ and broker/: a new module without its row fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = re.compile(r"^\*\*.*\(`((?:band|broker)/[\w/]*)`\)\*\*")  # a table's heading names its folder
NAME = re.compile(r"`([\w/]+\.py)`")


def named_in_the_doc() -> set[str]:
    """Every ``path.py`` the page names: full paths anywhere, file names in a folder's table."""
    found: set[str] = set()
    folder = ""
    for line in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").splitlines():
        heading = FOLDER.match(line)
        if heading:
            folder = heading.group(1).rstrip("/") + "/"
        elif line.startswith("#"):
            folder = ""
        for name in NAME.findall(line):
            found.add(name if name.startswith(("band/", "broker/")) else folder + name if folder else name)
    return found


def test_every_module_has_its_place_in_the_architecture_doc() -> None:
    named = named_in_the_doc()
    modules = sorted(str(p.relative_to(ROOT)) for package in ("band", "broker") for p in (ROOT / package).rglob("*.py")
                     if "templates" not in p.parts)
    missing = [m for m in modules if m not in named]
    assert not missing, f"docs/architecture.md does not say where these live: {missing}"
