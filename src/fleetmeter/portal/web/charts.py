"""Usage charts as server-rendered SVG geometry: bars, grid lines and labels, no script.

The page's CSP forbids inline script and style, so a chart is plain ``<svg>`` markup whose
shapes carry only geometry attributes and classes (colours live in portal.css); the
template ``_chart.html`` draws what ``bar_chart`` computes here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleetmeter.portal.services.device_page import UsageSeries

WIDTH = 560
HEIGHT = 170
LEFT = 52  # room for the y labels
RIGHT = 8
TOP = 10
BOTTOM = 22  # room for the x labels


@dataclass(frozen=True)
class Unit:
    title: str
    divisor: int
    symbol: str
    digits: int


UNITS = {
    "impressions": Unit("Pages per day", 1, "pages", 0),
    "total_media_area_mm2": Unit("Media per day", 1_000_000, "m²", 2),  # mm² → m²
    "total_ink_ul": Unit("Ink per day", 1000, "mL", 1),  # µL → mL
}


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str  # "bar", or "bar reset" where the counter went backwards
    title: str  # the hover text: day and value


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str
    anchor: str = "end"  # SVG text-anchor


@dataclass(frozen=True)
class BarChart:
    meter: str
    title: str
    summary: str
    width: int
    height: int
    plot_left: float
    plot_right: float
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    empty: bool


def bar_chart(series: UsageSeries) -> BarChart:
    unit = UNITS.get(series.meter, Unit(series.meter, 1, "", 0))
    values = [d.value for d in series.days]
    known = [v for v in values if v is not None]
    top = _nice_ceiling(max(known, default=0) / unit.divisor)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(values), 1)
    bars: list[Bar] = []
    for i, day in enumerate(series.days):
        x = LEFT + i * step + step * 0.1
        if day.value is None:
            # A reset or swap: a full-height hatched marker instead of a (negative) bar.
            bars.append(Bar(x, TOP, step * 0.8, plot_h, "bar reset", f"{day.day}: counter reset"))
            continue
        amount = day.value / unit.divisor
        height = 0.0 if top == 0 else plot_h * amount / top
        bars.append(
            Bar(
                round(x, 2),
                round(TOP + plot_h - height, 2),
                round(step * 0.8, 2),
                round(height, 2),
                "bar",
                f"{day.day}: {_fmt(amount, unit)} {unit.symbol}",
            )
        )
    # Half of a small whole-number top (1 page) needs a decimal to be labelled truthfully.
    tick_unit = unit if (top / 2).is_integer() or unit.digits else Unit("", 1, "", 1)
    y_ticks = [
        Tick(LEFT - 6, round(TOP + plot_h - plot_h * f, 2), _fmt(top * f, tick_unit))
        for f in (0.0, 0.5, 1.0)
    ]
    x_ticks = []
    if series.days:
        # First, middle and last day: enough to read the time axis without crowding it.
        last = len(series.days) - 1
        for i in sorted({0, len(series.days) // 2, last}):
            # The outer labels align to the plot's edges, so they are never cut off.
            anchor = "start" if i == 0 else ("end" if i == last else "middle")
            x = (
                LEFT
                if anchor == "start"
                else (WIDTH - RIGHT if anchor == "end" else LEFT + (i + 0.5) * step)
            )
            x_ticks.append(
                Tick(round(x, 2), HEIGHT - 6, series.days[i].day.strftime("%d %b"), anchor)
            )
    total = sum(known) / unit.divisor
    return BarChart(
        meter=series.meter,
        title=unit.title,
        summary=f"{_fmt(total, unit)} {unit.symbol} in {len(values)} days",
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        bars=bars,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        empty=not any(known),
    )


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above ``value`` (0 stays 0)."""
    if value <= 0:
        return 0.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if value <= factor * power:
            return float(factor * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _fmt(value: float, unit: Unit) -> str:
    return f"{value:,.{unit.digits}f}"
