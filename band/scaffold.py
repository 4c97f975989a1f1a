"""``band new NAME``: a service skeleton whose test passes as written."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from . import wire

FILES = {"main.py": "main.py.tmpl", "config.yml": "config.yml.tmpl", "test_{name}.py": "test_service.py.tmpl"}


def create(name: str, parent: Path) -> Path:
    """Write ``parent/name`` with main.py, config.yml and a test.

    Raises:
        ValueError: ``name`` is not a valid service name.
        FileExistsError: the directory exists already.
    """
    if not wire.is_service_name(name):
        raise ValueError(f"service name {name!r} must be letters, digits, '_' or '-'")
    folder = parent / name
    if folder.exists():
        raise FileExistsError(f"{folder} exists already")
    folder.mkdir(parents=True)
    templates = resources.files("band") / "templates"
    for target, template in FILES.items():
        text = (templates / template).read_text(encoding="utf-8").replace("{{name}}", name)
        (folder / target.format(name=name.replace("-", "_"))).write_text(text, encoding="utf-8")
    return folder
