"""docs/architecture.md names every file of band/ and broker/, and every public module has its ``__all__``."""

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


def test_every_public_module_says_what_it_exports() -> None:
    """``__all__`` in every module whose name does not start with ``_`` (and every package)."""
    lacking = []
    for package in ("band", "broker"):
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT)
            private = any(part.startswith("_") and part != "__init__.py" for part in rel.parts)
            if private or "templates" in rel.parts or path.name == "__main__.py":
                continue
            if not re.search(r"^__all__\b", path.read_text(encoding="utf-8"), re.M):
                lacking.append(str(rel))
    assert not lacking, f"no __all__ in {sorted(lacking)}"
