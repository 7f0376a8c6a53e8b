"""Small inline-SVG charts for the static pages: lines, box plots and bars.

Each function returns one ``<svg class="plot">`` element (a string) with a ``<title>``, axes,
ticks, a legend where there are several series, and a ``<title>`` tooltip on every mark, so
the charts need no plotting library, no JavaScript and no external file. Text is escaped.
"""
from __future__ import annotations

import math

from report.html_page import esc

WIDTH, HEIGHT = 460, 280
LEFT, RIGHT, TOP, BOTTOM = 60, 14, 46, 46
CHAR_WIDTH = 6.2
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d", "#eeca3b")
_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)


def nice_ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """About ``count`` evenly spaced round values covering ``[low, high]`` (first <= low,
    last >= high), steps of 1, 2, 2.5 or 5 times a power of ten (whole steps if ``integer``)."""
    if not high > low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = high / count - low / count  # not (high - low) / count: the span of +-1e308 overflows
    exponent = math.floor(math.log10(raw))
    mantissa = next(m for m in _STEPS if m * 10.0 ** exponent >= raw * (1 - 1e-9))
    if integer and exponent < 0:
        mantissa, exponent = 1.0, 0
    elif integer and exponent == 0 and mantissa == 2.5:
        mantissa = 5.0
    step = _decimal(mantissa, exponent)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [_decimal(i * mantissa, exponent) for i in range(first, last + 1)]


def _decimal(digits: float, exponent: int) -> float:
    """``digits * 10**exponent`` as the float nearest that decimal (``95e-5`` is ``0.00095``)."""
    return digits / 10.0 ** -exponent if exponent < 0 else digits * 10.0 ** exponent


def tick_label(value: float) -> str:
    """A short label: whole numbers as they are (``2500``), others with three significant
    digits (``0.001``, ``2.5e-05``)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e7 else f"{value:.3g}"


class _Frame:
    """Plot area geometry and the shared SVG pieces (title, axes, ticks, legend)."""

    def __init__(self, title: str, x_label: str, y_label: str, y_ticks: list[float]):
        self.title, self.x_label, self.y_label = title, x_label, y_label
        self.y_ticks = y_ticks
        self.x0, self.x1 = LEFT, WIDTH - RIGHT
        self.y0, self.y1 = HEIGHT - BOTTOM, TOP

    def y(self, value: float) -> float:
        low, high = self.y_ticks[0], self.y_ticks[-1]
        return self.y0 - (value - low) / (high - low) * (self.y0 - self.y1)

    def open(self) -> list[str]:
        lines = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" "
                 f"width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{esc(self.title)}\" "
                 "font-family=\"system-ui, sans-serif\" font-size=\"11\">",
                 f"<title>{esc(self.title)}</title>",
                 f"<rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#fff\"/>",
                 f"<text x=\"{WIDTH / 2:.1f}\" y=\"16\" text-anchor=\"middle\" font-size=\"13\" "
                 f"font-weight=\"bold\">{esc(self.title)}</text>"]
        for tick in self.y_ticks:
            y = self.y(tick)
            lines.append(f"<line x1=\"{self.x0}\" x2=\"{self.x1}\" y1=\"{y:.1f}\" y2=\"{y:.1f}\" stroke=\"#e6e6e6\"/>")
            lines.append(f"<text x=\"{self.x0 - 5}\" y=\"{y + 4:.1f}\" text-anchor=\"end\">"
                         f"{esc(tick_label(tick))}</text>")
        lines += [f"<line x1=\"{self.x0}\" x2=\"{self.x1}\" y1=\"{self.y0}\" y2=\"{self.y0}\" stroke=\"#333\"/>",
                  f"<line x1=\"{self.x0}\" x2=\"{self.x0}\" y1=\"{self.y0}\" y2=\"{self.y1}\" stroke=\"#333\"/>",
                  f"<text x=\"{(self.x0 + self.x1) / 2:.1f}\" y=\"{HEIGHT - 8}\" text-anchor=\"middle\">"
                  f"{esc(self.x_label)}</text>",
                  f"<text transform=\"translate(14 {(self.y0 + self.y1) / 2:.1f}) rotate(-90)\" "
                  f"text-anchor=\"middle\">{esc(self.y_label)}</text>"]
        return lines

    def x_tick(self, x: float, label: str, room: float) -> list[str]:
        """A tick at ``x`` labelled ``label``, slanted when wider than ``room`` pixels."""
        tick = f"<line x1=\"{x:.1f}\" x2=\"{x:.1f}\" y1=\"{self.y0}\" y2=\"{self.y0 + 4}\" stroke=\"#333\"/>"
        if CHAR_WIDTH * len(label) <= room:
            return [tick, f"<text x=\"{x:.1f}\" y=\"{self.y0 + 16}\" text-anchor=\"middle\">{esc(label)}</text>"]
        return [tick, f"<text transform=\"translate({x + 4:.1f} {self.y0 + 12}) rotate(-30)\" "
                      f"text-anchor=\"end\">{esc(label)}</text>"]

    def legend(self, names: list[str]) -> list[str]:
        """One coloured swatch and name per series, in a row under the title."""
        lines, x = [], float(self.x0)
        for i, name in enumerate(names):
            colour = PALETTE[i % len(PALETTE)]
            lines += [f"<rect x=\"{x:.1f}\" y=\"24\" width=\"10\" height=\"10\" fill=\"{colour}\"/>",
                      f"<text x=\"{x + 14:.1f}\" y=\"33\">{esc(name)}</text>"]
            x += 24 + CHAR_WIDTH * len(name)
        return lines


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _segments(values: list[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """The runs of consecutive points whose y is a finite number: a NaN, infinity or None
    between them is a gap in the line."""
    segments: list[list[tuple[float, float]]] = [[]]
    for x, y in values:
        if _finite(y):
            segments[-1].append((x, y))
        elif segments[-1]:
            segments.append([])
    return [segment for segment in segments if segment]


def line_chart(series: dict[str, list[tuple[float, float | None]]], title: str, x_label: str, y_label: str) -> str:
    """One line (with point markers) per named series of ``(x, y)`` points; a y that is None,
    NaN or infinite draws no mark and breaks the line (its x still counts for the axis)."""
    points = [p for values in series.values() for p in values if _finite(p[0])]
    xs, ys = [p[0] for p in points], [p[1] for p in points if _finite(p[1])]
    xs, ys = xs or [0.0, 1.0], ys or [0.0, 1.0]
    frame = _Frame(title, x_label, y_label, nice_ticks(min(ys), max(ys)))
    x_ticks = nice_ticks(min(xs), max(xs), integer=all(float(x).is_integer() for x in xs))
    x_low, x_high = x_ticks[0], x_ticks[-1]

    def x_of(value: float) -> float:
        return frame.x0 + (value - x_low) / (x_high - x_low) * (frame.x1 - frame.x0)

    lines = frame.open()
    for tick in x_ticks:
        lines += frame.x_tick(x_of(tick), tick_label(tick), (frame.x1 - frame.x0) / len(x_ticks))
    if len(series) > 1:
        lines += frame.legend(list(series))
    for i, (name, values) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        segments = _segments([(x, y) for x, y in values if _finite(x)])
        for segment in segments:
            coords = " ".join(f"{x_of(x):.1f},{frame.y(y):.1f}" for x, y in segment)
            lines.append(f"<polyline points=\"{coords}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>")
        for x, y in (point for segment in segments for point in segment):
            lines.append(f"<circle cx=\"{x_of(x):.1f}\" cy=\"{frame.y(y):.1f}\" r=\"2.5\" fill=\"{colour}\">"
                         f"<title>{esc(name)}: {esc(tick_label(x))}, {y:.4g}</title></circle>")
    lines.append("</svg>")
    return "\n".join(lines)


def box_chart(categories: list[str], groups: dict[str, list[dict[str, float] | None]], title: str,
              y_label: str) -> str:
    """Side-by-side box plots: for each category one box per group (``groups[name][i]`` the
    statistics of category ``i``: min, q1, median, q3, max, mean, count; None draws nothing).
    Whiskers span min to max, the box the quartiles, a line marks the median, a dot the mean."""
    stats = [s for values in groups.values() for s in values if s is not None]
    top = max((s["max"] for s in stats), default=1.0)
    frame = _Frame(title, "", y_label, nice_ticks(0.0, top))
    slot = (frame.x1 - frame.x0) / max(len(categories), 1)
    width = min(slot * 0.8 / max(len(groups), 1), 28.0)
    lines = frame.open() + frame.legend(list(groups))
    for c, category in enumerate(categories):
        centre = frame.x0 + slot * (c + 0.5)
        lines += frame.x_tick(centre, category, slot)
        for g, (name, values) in enumerate(groups.items()):
            s = values[c]
            if s is None:
                continue
            colour = PALETTE[g % len(PALETTE)]
            left = centre + (g - len(groups) / 2) * width
            mid = left + width / 2
            tip = (f"{category}, {name}: n={s['count']}, min {s['min']:.3f}, q1 {s['q1']:.3f}, "
                   f"median {s['median']:.3f}, q3 {s['q3']:.3f}, max {s['max']:.3f}, mean {s['mean']:.3f}")
            lines += [f"<g><title>{esc(tip)}</title>",
                      f"<line x1=\"{mid:.1f}\" x2=\"{mid:.1f}\" y1=\"{frame.y(s['min']):.1f}\" "
                      f"y2=\"{frame.y(s['max']):.1f}\" stroke=\"{colour}\"/>",
                      f"<rect x=\"{left + 1:.1f}\" y=\"{frame.y(s['q3']):.1f}\" width=\"{width - 2:.1f}\" "
                      f"height=\"{max(frame.y(s['q1']) - frame.y(s['q3']), 1):.1f}\" fill=\"{colour}\" "
                      "fill-opacity=\"0.35\" stroke=\"" + colour + "\"/>",
                      f"<line x1=\"{left + 1:.1f}\" x2=\"{left + width - 1:.1f}\" y1=\"{frame.y(s['median']):.1f}\" "
                      f"y2=\"{frame.y(s['median']):.1f}\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                      f"<circle cx=\"{mid:.1f}\" cy=\"{frame.y(s['mean']):.1f}\" r=\"2\" fill=\"#222\"/>",
                      "</g>"]
    lines.append("</svg>")
    return "\n".join(lines)


def bar_chart(labels: list[str], values: list[float], title: str, x_label: str, y_label: str) -> str:
    """One bar per label, heights ``values``."""
    frame = _Frame(title, x_label, y_label, nice_ticks(0.0, max(values, default=1.0) or 1.0))
    slot = (frame.x1 - frame.x0) / max(len(labels), 1)
    lines = frame.open()
    for i, (label, value) in enumerate(zip(labels, values)):
        left = frame.x0 + slot * i
        lines += frame.x_tick(left + slot / 2, label, slot)
        lines.append(f"<rect x=\"{left + 1:.1f}\" y=\"{frame.y(value):.1f}\" width=\"{slot - 2:.1f}\" "
                     f"height=\"{frame.y0 - frame.y(value):.1f}\" fill=\"{PALETTE[0]}\">"
                     f"<title>{esc(label)}: {value:g}</title></rect>")
    lines.append("</svg>")
    return "\n".join(lines)
