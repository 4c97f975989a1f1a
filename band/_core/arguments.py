"""Is a call's JSON the caller's fault? Checks parameters against the function's signature.

A missing or mistyped argument is the caller's mistake and gets a 400 naming it,
instead of the 500 a ``TypeError`` from inside the function would give. Two checks,
both before the function runs:

- the parameters bind to the signature (``inspect.Signature.bind``);
- a parameter annotated with a JSON type (``str``, ``int``, ``float``, ``bool``,
  ``list``, ``dict``, ``None`` and unions of them, generics by their origin) holds a
  value of that type. Other annotations (``Any``, classes, protocols) are not judged.

A ``TypeError`` raised inside the function stays the service's own fault (a 500):
only the function knows whether it came from its arguments or from a bug.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

_JSON_TYPES: dict[Any, str] = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
                               list: "an array", dict: "an object", type(None): "null"}
_cache: dict[Callable[..., Any], Arguments] = {}


def _json_name(value: Any) -> str:
    for kind, name in ((bool, "true or false"), (str, "a string"), (int, "an integer"), (float, "a number"),
                       (list, "an array"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def _kinds(annotation: Any) -> tuple[Any, ...] | None:
    """The JSON types ``annotation`` allows, or ``None`` when it is not ours to judge."""
    if annotation in _JSON_TYPES:
        return (annotation,)
    if annotation is None:
        return (type(None),)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        out: tuple[Any, ...] = ()
        for member in typing.get_args(annotation):
            kinds = _kinds(member)
            if kinds is None:
                return None
            out += kinds
        return out
    if origin in (list, dict):
        return (origin,)
    return None


def _fits(value: Any, kinds: tuple[Any, ...]) -> bool:
    for kind in kinds:
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if kind is int and isinstance(value, bool):
            continue
        if isinstance(value, kind):
            return True
    return False


class Arguments:
    """The checks for one function, worked out on its first call."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        target = inspect.unwrap(fn)  # @blocking wraps; the hints live on the original
        self.signature = inspect.signature(fn)
        # Keywords that passed the missing-argument check can only fail to bind when a
        # parameter is positional-only: bind (a few microseconds) only then.
        self._bind = any(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in self.signature.parameters.values())
        try:
            hints = typing.get_type_hints(target)
        except Exception:  # noqa: BLE001 - an annotation that does not evaluate: judge none
            hints = {}
        self.kinds = {name: kinds for name, hint in hints.items()
                      if name in self.signature.parameters and (kinds := _kinds(hint)) is not None}

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> Arguments:
        found = _cache.get(fn)
        if found is None:
            found = _cache[fn] = cls(fn)
        return found

    def problem(self, method: str, params: Mapping[str, Any]) -> str | None:
        """Why ``method(**params)`` is a bad call, naming the argument, or ``None``."""
        if self._bind:
            try:
                self.signature.bind(**params)
            except TypeError as exc:
                return f"{method}(): {exc}"
        for name, kinds in self.kinds.items():
            if name in params and not _fits(params[name], kinds):
                wanted = " or ".join(dict.fromkeys(_JSON_TYPES[k] for k in kinds))
                return f"{method}(): argument {name!r} must be {wanted}, got {_json_name(params[name])}"
        return None


__all__ = ["Arguments"]
