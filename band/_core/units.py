"""Durations (``13 months``) and sizes (``10 GB``) as config writes them.

One grammar for every retention setting: a whole number and a unit, or ``none``. A
duration keeps its calendar unit, because ClickHouse's TTL counts real months
(``INTERVAL 13 MONTH``); JetStream counts seconds, where a month is 30 days and a
year 365. Sizes count in 1024s, as nats-server's own config does (``20GB``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

NONE = "none"
_AMOUNT = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*\Z")
DAY_S = 24 * 3600
# ClickHouse's interval unit, its seconds (for JetStream), and how config may name it
_UNITS = (
    ("SECOND", 1, ("second", "seconds", "s", "sec")),
    ("MINUTE", 60, ("minute", "minutes", "min")),
    ("HOUR", 3600, ("hour", "hours", "h")),
    ("DAY", DAY_S, ("day", "days", "d")),
    ("WEEK", 7 * DAY_S, ("week", "weeks", "w")),
    ("MONTH", 30 * DAY_S, ("month", "months")),
    ("YEAR", 365 * DAY_S, ("year", "years", "y")),
)
_TIME_UNITS = {name: (unit, seconds) for unit, seconds, names in _UNITS for name in names}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
               "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}
DURATION_HINT = "a whole number and a unit (seconds, minutes, hours, days, weeks, months, years), e.g. '13 months'"
SIZE_HINT = "a whole number of bytes with an optional unit (KB, MB, GB, TB; 1024s), e.g. '10 GB'"


@dataclass(frozen=True)
class Duration:
    """A whole number of one calendar unit."""

    amount: int
    unit: str  # ClickHouse's name: SECOND ... YEAR

    @property
    def seconds(self) -> int:
        """Seconds, for JetStream (a month 30 days, a year 365)."""
        return self.amount * next(s for u, s, _ in _UNITS if u == self.unit)

    def interval(self) -> str:
        """ClickHouse's canonical form, as ``system.tables`` shows it: ``toIntervalMonth(13)``."""
        return f"toInterval{self.unit.capitalize()}({self.amount})"

    def __str__(self) -> str:
        return f"{self.amount} {self.unit.lower()}{'s' if self.amount != 1 else ''}"


def duration(value: object, setting: str) -> Duration | None:
    """``"13 months"`` → ``Duration(13, "MONTH")``; ``none`` or null → ``None`` (no limit).

    Raises:
        ConfigError: anything else, naming ``setting``.
    """
    if value is None or str(value).strip().lower() in ("", NONE):
        return None
    found = _AMOUNT.match(str(value))
    unit = _TIME_UNITS.get(found.group(2).lower()) if found else None
    if found is None or unit is None or int(found.group(1)) <= 0:
        raise ConfigError(f"{setting} is {value!r}; use {DURATION_HINT}, or {NONE}")
    return Duration(int(found.group(1)), unit[0])


def size(value: object, setting: str) -> int | None:
    """``"10 GB"`` → bytes; ``none``, null or ``-1`` → ``None`` (no limit).

    Raises:
        ConfigError: anything else, naming ``setting``.
    """
    if value is None or str(value).strip().lower() in ("", NONE, "-1"):
        return None
    found = _AMOUNT.match(str(value))
    unit = _SIZE_UNITS.get(found.group(2).lower()) if found else None
    if found is None or unit is None or int(found.group(1)) <= 0:
        raise ConfigError(f"{setting} is {value!r}; use {SIZE_HINT}, or {NONE}")
    return int(found.group(1)) * unit


__all__ = ["DURATION_HINT", "NONE", "SIZE_HINT", "Duration", "duration", "size"]
