"""Hits per rule per day as an inline SVG line chart: rendered on the server, no script, no build step."""

from __future__ import annotations

import datetime as dt

from markupsafe import Markup, escape

# Colour-blind-safe palette (Okabe-Ito), then greys.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442", "#999999", "#666666"]


def days_back(today: dt.date, n: int) -> list[str]:
    return [(today - dt.timedelta(days=n - 1 - i)).isoformat() for i in range(n)]


def line_chart(series: dict[str, dict[str, int]], days: list[str], width: int = 820, height: int = 280) -> Markup:
    """One polyline per rule over ``days`` (ISO dates); zero where a day has no hits."""
    left, right, top, bottom = 40, 150, 16, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([n for per_day in series.values() for n in per_day.values()] + [1])
    step = _nice_step(peak)
    y_max = step * -(-peak // step)
    x = lambda i: left + (plot_w * i / max(len(days) - 1, 1))  # noqa: E731
    y = lambda v: top + plot_h - plot_h * v / y_max  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}"'
             f' width="{width}" height="{height}" aria-label="Hits per rule per day, last {len(days)} days">']
    parts.append(f"<title>Hits per rule per day, {escape(days[0])} to {escape(days[-1])}</title>")
    for v in range(0, y_max + 1, step):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e3e3e3"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11" fill="#555">{v}</text>')
    for i, day in enumerate(days):
        if i % 7 == (len(days) - 1) % 7:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 12}" text-anchor="middle" font-size="11" fill="#555">'
                         f"{escape(day[5:])}</text>")
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#999"/>')
    ordered = sorted(series, key=lambda r: (-sum(series[r].values()), r))
    for n, rule in enumerate(ordered):
        colour = PALETTE[n % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(series[rule].get(day, 0)):.1f}" for i, day in enumerate(days))
        parts.append(f'<polyline class="series" data-rule="{escape(rule)}" fill="none" stroke="{colour}"'
                     f' stroke-width="2" points="{points}"/>')
        for i, day in enumerate(days):
            v = series[rule].get(day, 0)
            if v:
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                             f"<title>{escape(rule)}, {escape(day)}: {v}</title></circle>")
        ly = top + 14 + 18 * n
        parts.append(f'<rect x="{left + plot_w + 14}" y="{ly - 9}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{left + plot_w + 32}" y="{ly + 1}" font-size="12" fill="#222">'
                     f"{escape(rule)} ({sum(series[rule].values())})</text>")
    if not ordered:
        parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle" fill="#777">'
                     "no hits in this period</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


def _nice_step(peak: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000):
        if peak / step <= 5:
            return step
    return 10 ** len(str(peak // 5))
