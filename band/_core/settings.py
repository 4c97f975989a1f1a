"""``settings``: a service's config.yml with ``{{VAR}}`` taken from the environment.

Read once by ``band run`` before the service is imported. A variable with no value and
no default, or broken YAML, stops the start with an error naming the file (and the
variable or line) instead of a service running on half a config.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

CONFIG_NAMES = ("config.yml", "config.yaml")
_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*default\(\s*(?:'([^']*)'|\"([^\"]*)\")\s*\))?\s*\}\}")


class Settings(Mapping[str, Any]):
    """Read-only config: ``settings.extra``, ``settings['extra']``, ``settings.get('x', d)``.

    A missing attribute raises ``AttributeError`` (never a silent ``None``); nested
    mappings are ``Settings`` too.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))

    @staticmethod
    def _wrap(value: Any) -> Any:
        if isinstance(value, Mapping) and not isinstance(value, Settings):
            return Settings(value)
        if isinstance(value, list):
            return [Settings._wrap(v) for v in value]
        return value

    def __getattr__(self, name: str) -> Any:
        try:
            return self._wrap(self._data[name])
        except KeyError:
            raise AttributeError(f"settings has no {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("settings are read-only; change config.yml or the environment")

    def __getitem__(self, name: str) -> Any:
        return self._wrap(self._data[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Settings({self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)


def substitute(text: str, env: Mapping[str, str], source: str = "config") -> str:
    """Replace ``{{VAR}}`` and ``{{VAR|default('x')}}`` from ``env``.

    Raises:
        ConfigError: a variable with no value and no default (names it, the file and line).
    """

    def replace(match: re.Match[str], line_index: int) -> str:
        name, single, double = match.group(1), match.group(2), match.group(3)
        if name in env:
            return env[name]
        default = single if single is not None else double
        if default is not None:
            return default
        raise ConfigError(f"{source}:{line_index + 1}: environment variable {name} is not set and has no default")

    # whole-line comments are left alone, so a config can document its variables
    out = []
    for index, line in enumerate(text.splitlines(keepends=True)):
        keep = line.lstrip().startswith("#")
        out.append(line if keep else _VAR.sub(functools.partial(replace, line_index=index), line))
    return "".join(out)


# Keys band itself reads from config.yml. Any other key is the service's own setting.
FRAMEWORK_KEYS = (
    "name", "version", "description", "max_inflight", "drain_timeout", "call_timeout", "cleanup_timeout",
    "redis", "redis_url",
)


def _edits(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) that turn ``a`` into ``b``."""
    rows = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            row.append(min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (ca != cb)))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def misspelt_keys(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, framework key)`` for each key one or two letters off a framework key
    (``verison``, ``drain_timout``). A short key only counts with its own letters
    swapped (``nmae``), so a setting such as ``game`` is not taken for ``name``."""
    found = []
    for key in data:
        if not isinstance(key, str) or key in FRAMEWORK_KEYS:
            continue
        for known in FRAMEWORK_KEYS:
            edits = _edits(key, known)
            close = edits <= 2 if len(known) >= 6 else edits <= 2 and sorted(key) == sorted(known)
            if close:
                found.append((key, known))
                break
    return found


def find_config(service_path: Path) -> Path | None:
    """config.yml (or .yaml) in a service directory, or beside a service file."""
    folder = service_path if service_path.is_dir() else service_path.parent
    for name in CONFIG_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def parse(text: str, source: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Substitute variables, then parse YAML into a mapping."""
    try:
        data = yaml.safe_load(substitute(text, os.environ if env is None else env, source))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    return data


def load(service_path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """The settings of the service at ``service_path`` (``{}`` when it has no config)."""
    config = find_config(service_path)
    if config is None:
        return Settings()
    return Settings(parse(config.read_text(encoding="utf-8"), str(config), env))
