"""A time-series plot as inline SVG: lines, axes with a few ticks, a legend. No dependency.

The snapshot page (`monitoring.snapshot`) draws every dashboard panel with it, so a browser
shows the page without a script or a network connection.
"""

from __future__ import annotations

import dataclasses
import html
import math
import time

WIDTH, HEIGHT = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 28
COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
LEGEND_LINE = 16


@dataclasses.dataclass(frozen=True)
class Series:
    name: str
    points: tuple[tuple[float, float], ...]  # (unix seconds, value), finite values only


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= step * factor:
            step *= factor
            break
    start = math.ceil(low / step) * step
    return [start + i * step for i in range(int((high - start) / step) + 1)]


def format_value(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value * 100:.3g}%"
    if unit == "s":
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    if unit == "reqps":
        return f"{value:.3g}/s"
    return f"{value:.4g}"


def plot(series: list[Series], unit: str = "short") -> str:
    """One SVG element; an empty plot says "no data"."""
    points = [p for s in series for p in s.points]
    legend_height = LEGEND_LINE * len(series)
    height = HEIGHT + legend_height
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" class="plot">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    if not points:
        out.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
            'font-family="sans-serif" font-size="14" fill="#999">no data</text></svg>'
        )
        return "".join(out)
    t0, t1 = min(p[0] for p in points), max(p[0] for p in points)
    v0, v1 = min(p[1] for p in points), max(p[1] for p in points)
    if v0 == v1:
        v0, v1 = v0 - (abs(v0) or 1) * 0.5, v1 + (abs(v1) or 1) * 0.5
    if t0 == t1:
        t0, t1 = t0 - 1, t1 + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return TOP + (1 - (v - v0) / (v1 - v0)) * plot_h

    axis = 'stroke="#cccccc" stroke-width="1"'
    text = 'font-family="sans-serif" font-size="11" fill="#444"'
    for v in _ticks(v0, v1):
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" {axis}/>'
        )
        out.append(
            f'<text x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end" {text}>'
            f"{html.escape(format_value(v, unit))}</text>"
        )
    for t in _ticks(t0, t1, 4):
        label = time.strftime("%H:%M:%S", time.gmtime(t))
        out.append(
            f'<text x="{x(t):.1f}" y="{HEIGHT - 8}" text-anchor="middle" {text}>{label}</text>'
        )
    out.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" {axis}/>'
    )
    for i, s in enumerate(series):
        color = COLORS[i % len(COLORS)]
        if len(s.points) == 1:
            (t, v) = s.points[0]
            out.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"/>')
        elif s.points:
            coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s.points)
            out.append(
                f'<polyline class="series" points="{coords}" fill="none" stroke="{color}" '
                'stroke-width="2"/>'
            )
        ly = HEIGHT + LEGEND_LINE * i + 10
        out.append(f'<rect x="{LEFT}" y="{ly - 8}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{LEFT + 16}" y="{ly + 1}" {text}>{html.escape(s.name)}</text>')
    out.append("</svg>")
    return "".join(out)
