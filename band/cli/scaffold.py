"""``band new NAME``: a service skeleton whose test passes as written."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from .. import wire
from .parser import Commands
from .spelling import spell

FILES = {"main.py": "main.py.tmpl", "config.yml": "config.yml.tmpl", "test_{name}.py": "test_service.py.tmpl"}


def register(commands: Commands) -> None:
    new = commands.add(
        "new", "NAME", "write a service skeleton with a passing test", new_service,
        description="Write NAME/main.py, NAME/config.yml and NAME/test_NAME.py: a handler, an RPC method and a test that passes as written.",
    )
    new.add_argument("name")
    new.add_argument("--dir", default=".", help="parent directory (default: here)")


def new_service(args: argparse.Namespace) -> int:
    try:
        folder = create(args.name, Path(args.dir))
    except (ValueError, FileExistsError) as exc:
        print(f"band new: {exc}", file=sys.stderr)
        return 2
    print(f"created {folder}\n  run it:  {spell('band')} run {folder}\n  test it: {spell('pytest')} {folder}")
    return 0


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
    templates = resources.files(__package__) / "templates"
    for target, template in FILES.items():
        text = (templates / template).read_text(encoding="utf-8").replace("{{name}}", name)
        (folder / target.format(name=name.replace("-", "_"))).write_text(text, encoding="utf-8")
    return folder


__all__ = [
    "FILES",
    "create",
    "new_service",
    "register",
]
