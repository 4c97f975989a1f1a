"""Charts as SVG text, drawn here: no chart library, nothing fetched by the browser.

Three shapes cover the panel: a sparkline (one rate over time, in a table cell), stacked
bars (events per name per 15 minutes) and lines (hits per second by status). Every label
is escaped; colours come from one palette so a name keeps its colour across charts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
STATUS_COLOURS = {"2": "#59a14f", "3": "#4e79a7", "4": "#f28e2b", "5": "#e15759"}


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def status_colour(status: str, index: int) -> str:
    return STATUS_COLOURS.get(status[:1], colour(index))


def sparkline(values: Sequence[float], width: int = 120, height: int = 28, stroke: str = "#4e79a7") -> str:
    """A small line of ``values`` (oldest first), filled below, scaled to its own maximum."""
    if not values:
        values = [0.0]
    top = max(max(values), 1e-9)
    step = width / max(len(values) - 1, 1)
    points = [(i * step, height - 2 - (v / top) * (height - 4)) for i, v in enumerate(values)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    area = f"0,{height} {line} {points[-1][0]:.1f},{height}"
    return (
        f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="rate over time">'
        f'<polygon points="{area}" fill="{stroke}" fill-opacity="0.15"/>'
        f'<polyline points="{line}" fill="none" stroke="{stroke}" stroke-width="1.5"/></svg>'
    )


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if value <= factor * power:
            return float(factor * power)
    return float(10 * power)


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _frame(width: int, height: int, title: str, top: float, left: int, bottom: int, unit: str) -> list[str]:
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="16" font-size="13" font-weight="600" fill="#1f2937">{escape(title)}</text>',
    ]
    plot_h = height - bottom - 28
    for i in range(5):
        y = 28 + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7280">{_fmt(top * i / 4)}</text>')
    if unit:
        parts.append(f'<text x="{width - 10}" y="16" text-anchor="end" fill="#6b7280">{escape(unit)}</text>')
    return parts


def _legend(names: Sequence[str], colours: Sequence[str], x: int, y: int) -> list[str]:
    parts: list[str] = []
    cursor = float(x)
    for name, fill in zip(names, colours, strict=True):
        parts.append(f'<rect x="{cursor:.0f}" y="{y - 9}" width="10" height="10" rx="2" fill="{fill}"/>')
        parts.append(f'<text x="{cursor + 14:.0f}" y="{y}" fill="#374151">{escape(name)}</text>')
        cursor += 24 + 7 * len(name)
    return parts


def _hhmm(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


def stacked_bars(
    times: Sequence[float], series: Mapping[str, Sequence[float]], title: str, width: int = 1300, height: int = 320, unit: str = ""
) -> str:
    """One bar per time bucket, one colour per series, stacked; a legend under the plot."""
    left, bottom = 48, 44
    totals = [sum(s[i] for s in series.values()) for i in range(len(times))]
    top = _nice_max(max(totals, default=0))
    parts = _frame(width, height, title, top, left, bottom, unit)
    plot_w, plot_h = width - left - 10, height - bottom - 28
    slot = plot_w / max(len(times), 1)
    names = list(series)
    for i, t in enumerate(times):
        y = float(28 + plot_h)
        for k, name in enumerate(names):
            value = series[name][i]
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            parts.append(
                f'<rect x="{left + i * slot + 1:.1f}" y="{y:.1f}" width="{max(slot - 2, 1):.1f}" height="{h:.1f}" fill="{colour(k)}">'
                f"<title>{escape(name)} {_hhmm(t)}: {value:g}</title></rect>"
            )
    ticks = max(1, len(times) // 8)
    for i in range(0, len(times), ticks):
        parts.append(f'<text x="{left + i * slot:.1f}" y="{28 + plot_h + 14}" fill="#6b7280">{_hhmm(times[i])}</text>')
    if not names:
        parts.append(f'<text x="{width / 2:.0f}" y="{28 + plot_h / 2:.0f}" text-anchor="middle" fill="#9ca3af">no events in this window</text>')
    parts += _legend(names, [colour(k) for k in range(len(names))], left, height - 8)
    parts.append("</svg>")
    return "".join(parts)


def lines(
    times: Sequence[float], series: Mapping[str, Sequence[float]], title: str, width: int = 1300, height: int = 260,
    unit: str = "", colours: dict[str, str] | None = None, empty: str = "",
) -> str:
    """One line per series over ``times`` (oldest first)."""
    left, bottom = 48, 44
    top = _nice_max(max((v for s in series.values() for v in s), default=0))
    parts = _frame(width, height, title, top, left, bottom, unit)
    plot_w, plot_h = width - left - 10, height - bottom - 28
    span = (times[-1] - times[0]) if len(times) > 1 else 1.0
    names = list(series)
    fills = [(colours or {}).get(name) or colour(k) for k, name in enumerate(names)]
    for name, fill in zip(names, fills, strict=True):
        values = series[name]
        points = " ".join(
            f"{left + plot_w * (t - times[0]) / span:.1f},{28 + plot_h - plot_h * v / top:.1f}" for t, v in zip(times, values, strict=False)
        )
        parts.append(f'<polyline points="{points}" fill="none" stroke="{fill}" stroke-width="2"><title>{escape(name)}</title></polyline>')
    if len(times) > 1:
        for i in range(5):
            t = times[0] + span * i / 4
            parts.append(
                f'<text x="{left + plot_w * i / 4:.1f}" y="{28 + plot_h + 14}" fill="#6b7280"'
                f' text-anchor="{"start" if i == 0 else "end" if i == 4 else "middle"}"'
                f'>{time.strftime("%H:%M:%S", time.localtime(t))}</text>'
            )
    if not names or len(times) < 2:
        note = "collecting samples…" if len(times) < 2 else (empty or "nothing yet")
        parts.append(f'<text x="{width / 2:.0f}" y="{28 + plot_h / 2:.0f}" text-anchor="middle" fill="#9ca3af">{escape(note)}</text>')
    parts += _legend(names, fills, left, height - 8)
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["colour", "lines", "sparkline", "stacked_bars", "status_colour"]
