"""Event schemas: a JSON Schema per routing key or key prefix, read from one folder.

The edge checks each event once, after parsing and before enrichment; the store
re-checks failed events on ``band store replay-failed``; a listener that declares a
schema gets only events that pass. All of them read the same folder through
:func:`load`, so a schema means the same thing everywhere.

A file is ``<key>.yml`` / ``.yaml`` / ``.json``, optionally ``<key>@<version>.yml``;
its top level is a JSON Schema over the whole message (so ``data.revenue`` is
``properties: {data: {properties: {revenue: ...}}}``) plus two band keys, removed
before compiling: ``mode`` (``warn``, the default, or ``enforce``) and ``version``
(else the file name's, else ``$id``'s ``@<n>`` / ``/v<n>`` ending, else 1). When one key
has several versions, the highest is today's.

Validation is jsonschema-rs: a compiled validator answers a valid event in well
under a microsecond and lists every error with its path (``iter_errors``) when one
is not (see pyproject.toml for the measurement against fastjsonschema).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jsonschema_rs
import yaml

from . import wire
from .errors import ConfigError

WARN: Final = "warn"  # stored normally, the errors beside it (the schema_errors column)
ENFORCE: Final = "enforce"  # kept in failed_events instead of its table; a native caller gets a 400
MODES: Final = (WARN, ENFORCE)
DEFAULT_DIR: Final = "schemas"
SUFFIXES: Final = (".yml", ".yaml", ".json")
_ID_VERSION = re.compile(r"(?:@|/v)(\d+)$")
_MAX_RESOLVED = 10_000  # keys remembered for prefix schemas; hostile keys cannot grow it forever


@dataclass(frozen=True)
class Schema:
    """One key's (or prefix's) schema: what it applies to, its version and mode, where it came from."""

    key: str
    version: int
    mode: str
    file: Path
    validator: Any = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        """``key@version``, as kept beside a failed event."""
        return f"{self.key}@{self.version}"

    def errors(self, message: Any) -> list[dict[str, str]]:
        """Every error of ``message``, each ``{path, rule, message}`` (``path`` like
        ``data.revenue``); empty when it is valid (one compiled check, no list made)."""
        if self.validator.is_valid(message):
            return []
        return [
            {"path": ".".join(str(p) for p in error.instance_path) or "$",
             "rule": _keyword(type(error.kind).__name__),
             "message": error.message[:500]}
            for error in self.validator.iter_errors(message)
        ]

    def verdict(self, message: Any) -> dict[str, Any] | None:
        """The message's :data:`~band.wire.SCHEMA_ERRORS_FIELD` value, or ``None`` when valid."""
        errors = self.errors(message)
        if not errors:
            return None
        return {"schema": self.key, "version": self.version, "mode": self.mode, "errors": errors}


def _keyword(kind: str) -> str:
    """jsonschema-rs's error kind as the JSON Schema keyword it names (``MinLength`` → ``minLength``)."""
    return kind[:1].lower() + kind[1:]


class Schemas:
    """Every schema of a folder, by key; :meth:`for_key` finds the one for an event."""

    def __init__(self, schemas: Mapping[str, Schema], folder: Path | None = None) -> None:
        self.folder = folder
        self.by_key = dict(schemas)
        self._prefixes = sorted((s for s in self.by_key.values()), key=lambda s: -len(s.key))
        # exact keys answer from here at once; a prefix's answer is remembered per key
        self._resolved: dict[str, Schema | None] = dict(self.by_key)

    def __len__(self) -> int:
        return len(self.by_key)

    def __iter__(self) -> Iterator[Schema]:
        return iter(sorted(self.by_key.values(), key=lambda s: s.key))

    def for_key(self, key: str) -> Schema | None:
        """The schema for routing key ``key`` (its own, else its longest prefix's), or
        ``None``; one dict lookup once a key has been seen."""
        try:
            return self._resolved[key]
        except KeyError:
            pass
        found = next((s for s in self._prefixes if wire.key_matches(s.key, key)), None)
        if len(self._resolved) < _MAX_RESOLVED:
            self._resolved[key] = found
        return found

    def check(self, message: Mapping[str, Any]) -> dict[str, Any] | None:
        """The errors of ``message`` against its key's schema (see :meth:`Schema.verdict`);
        ``None`` when it has no schema or is valid."""
        schema = self.for_key(str(message.get("key") or ""))
        return None if schema is None else schema.verdict(message)


def _read(file: Path) -> Any:
    text = file.read_text(encoding="utf-8")
    return json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)


def _version(file: Path, stem_version: str | None, document: dict[str, Any]) -> int:
    version = document.pop("version", None)
    if version is None and stem_version is not None:
        version = stem_version
    if version is None:
        found = _ID_VERSION.search(str(document.get("$id") or ""))
        version = found.group(1) if found else 1
    try:
        number = int(version)
    except (TypeError, ValueError):
        number = -1
    if number < 1:
        raise ConfigError(f"schema {file}: version {version!r} is not a whole number from 1; "
                          "write e.g. 'version: 2' or name the file '<key>@2.yml'")
    return number


def load_file(file: Path) -> Schema:
    """One schema file, compiled.

    Raises:
        ConfigError: the file is not readable YAML/JSON, not an object, names a key that is
            not under ``in.``, has an unknown mode, or is not a valid JSON Schema; the
            message names the file.
    """
    key, _, stem_version = file.name[: -len(file.suffix)].partition("@")
    parts = key.split(".")
    if parts[0] != wire.EVENTS_ROOT or not all(wire.is_token(p) for p in parts):
        raise ConfigError(f"schema {file}: the file name must be a routing key or prefix under 'in.', "
                          "like 'in.gen.track.purchase.yml' or 'in.gen.track.purchase@2.yml'")
    try:
        document = _read(file)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"schema {file}: cannot read it: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"schema {file}: the top level must be an object (a JSON Schema), not {type(document).__name__}")
    mode = document.pop("mode", WARN)
    if mode not in MODES:
        raise ConfigError(f"schema {file}: mode {mode!r} is unknown; use one of {', '.join(MODES)}")
    version = _version(file, stem_version or None, document)
    try:
        validator = jsonschema_rs.validator_for(document)
    except ValueError as exc:  # jsonschema_rs.ValidationError is one
        raise ConfigError(f"schema {file}: not a valid JSON Schema: {' '.join(str(exc).split())[:400]}") from None
    return Schema(key=key, version=version, mode=str(mode), file=file, validator=validator)


def load(folder: str | Path) -> Schemas:
    """Every schema in ``folder`` (none when it does not exist); the highest version per key.

    Raises:
        ConfigError: a file that is not a valid schema (naming it), or two files with the
            same key and version.
    """
    root = Path(folder)
    chosen: dict[str, Schema] = {}
    if not root.is_dir():
        return Schemas(chosen, root)
    for file in sorted(p for p in root.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        schema = load_file(file)
        other = chosen.get(schema.key)
        if other is not None and other.version == schema.version:
            raise ConfigError(f"schema {file}: {other.file.name} already gives {schema.name}; "
                              "give one of them another version")
        if other is None or schema.version > other.version:
            chosen[schema.key] = schema
    return Schemas(chosen, root)


__all__ = ["DEFAULT_DIR", "ENFORCE", "MODES", "WARN", "Schema", "Schemas", "load", "load_file"]
