"""Does a JSON value fit a ClickHouse column? One converter per column type.

A converter returns the value as ClickHouse's ``JSONEachRow`` reads it, or raises
:class:`Misfit` (text in a ``UInt16``, 70000 in an ``Int16``): the row builder then
keeps the value in the row's ``_extra`` instead, so one odd value never fails a batch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

Converter = Callable[[Any], Any]

_INT_RANGES = {
    "UInt8": (0, 2**8 - 1), "UInt16": (0, 2**16 - 1), "UInt32": (0, 2**32 - 1), "UInt64": (0, 2**64 - 1),
    "Int8": (-(2**7), 2**7 - 1), "Int16": (-(2**15), 2**15 - 1), "Int32": (-(2**31), 2**31 - 1),
    "Int64": (-(2**63), 2**63 - 1),
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}")
_WRAPPER = re.compile(r"^(LowCardinality|Nullable)\((.*)\)\Z")
_ARRAY = re.compile(r"^Array\((.*)\)\Z")


class Misfit(ValueError):
    """The value does not fit the column's type."""


def text(value: Any) -> str:
    """A value as the text of an ``_extra`` entry: booleans 1/0, objects and lists JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _integer(low: int, high: int) -> Converter:
    def convert(value: Any) -> int:
        kind = type(value)
        number: int
        if kind is int:
            number = value
        elif kind is bool:
            number = int(value)
        elif kind is str and value.strip().lstrip("-").isdigit():
            number = int(value)
        elif kind is float and value.is_integer():
            number = int(value)
        else:
            raise Misfit(f"{value!r} is not an integer")
        if not low <= number <= high:
            raise Misfit(f"{number} is out of range {low}..{high}")
        return number

    return convert


def _float(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise Misfit(f"{value!r} is not a number") from None
    else:
        raise Misfit(f"{value!r} is not a number")
    if not math.isfinite(number):
        raise Misfit(f"{value!r} is not a finite number")
    return number


def _string(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, (dict, list)):
        raise Misfit("an object or list is not text")
    return text(value)


def _date(value: Any) -> str:
    if isinstance(value, str) and _DATE.match(value):
        return value
    raise Misfit(f"{value!r} is not a date YYYY-MM-DD")


def _datetime(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32:
        return value
    if isinstance(value, str) and _DATETIME.match(value):
        return value
    raise Misfit(f"{value!r} is not a date-time")


def _passthrough(value: Any) -> Any:
    """Types this module does not know (Decimal, UUID, Enum...): ClickHouse decides."""
    if isinstance(value, (dict, list)):
        raise Misfit("an object or list for a scalar column")
    return value


def int_range(type_: str) -> tuple[int, int] | None:
    """``(low, high)`` of an integer column type (wrappers and all), else None: the row
    builder puts an ``int`` within it into the column without calling a converter."""
    type_ = type_.strip()
    wrapped = _WRAPPER.match(type_)
    if wrapped:
        return int_range(wrapped.group(2))
    if type_ in ("Bool", "Boolean"):
        return (0, 1)
    return _INT_RANGES.get(type_)


def converter(type_: str) -> Converter:
    """The converter for a ClickHouse type such as ``Array(Int16)`` or ``LowCardinality(String)``."""
    type_ = type_.strip()
    wrapped = _WRAPPER.match(type_)
    if wrapped:
        return converter(wrapped.group(2))
    array = _ARRAY.match(type_)
    if array:
        item = converter(array.group(1))

        def convert_array(value: Any) -> list[Any]:
            if not isinstance(value, list):
                raise Misfit(f"{value!r} is not a list")
            return [item(v) for v in value if v is not None]

        return convert_array
    if type_ in _INT_RANGES:
        return _integer(*_INT_RANGES[type_])
    if type_ in ("Float32", "Float64"):
        return _float
    if type_ == "String" or type_.startswith("FixedString"):
        return _string
    if type_ in ("Date", "Date32"):
        return _date
    if type_.startswith("DateTime"):
        return _datetime
    if type_ in ("Bool", "Boolean"):
        return _integer(0, 1)
    return _passthrough


__all__ = [
    "Converter",
    "Misfit",
    "converter",
    "int_range",
    "text",
]
