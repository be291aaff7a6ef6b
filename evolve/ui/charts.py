"""Charts as SVG drawn on the server: the grid's heatmap, series over a run, per-shape speed.

No JavaScript and no style attributes (the pages' Content-Security-Policy allows neither);
every piece of text is escaped here, so a label that came from a run's configuration or a
candidate's timing cannot become markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# viridis, sampled: dark for the worst filled cell, yellow for the best
RAMP = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725")
EMPTY = "#eceff1"
FONT = 'font-family="sans-serif" font-size="11"'


def _f(value: float) -> str:
    return f"{value:.1f}"


def ramp(value: float, low: float, high: float) -> str:
    """The ramp's colour for ``value`` on [low, high]."""
    t = 0.5 if high <= low else (value - low) / (high - low)
    return RAMP[min(len(RAMP) - 1, max(0, int(t * len(RAMP))))]


@dataclass(frozen=True)
class HeatCell:
    """One square of the heatmap: the best elite over the hidden dimensions, if any."""

    fitness: float | None
    program_id: int | None
    tooltip: str


def heatmap(x_name: str, x_labels: Sequence[str], y_name: str | None, y_labels: Sequence[str],
            cells: Sequence[Sequence[HeatCell]], link: str = "/programs/{}") -> Markup:
    """``cells[y][x]``; a filled square links to its elite and shows its fitness."""
    size = 44 if len(x_labels) <= 12 else 28
    left, top = 70, 34
    width, height = left + size * len(x_labels) + 10, top + size * len(y_labels) + 40
    values = [c.fitness for row in cells for c in row if c.fitness is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart heatmap" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="MAP-Elites grid">']
    for i, label in enumerate(x_labels):
        out.append(f'<text x="{left + size * i + size / 2}" y="{top - 8}" text-anchor="middle" {FONT}>'
                   f"{escape(label)}</text>")
    out.append(f'<text x="{left + size * len(x_labels) / 2}" y="12" text-anchor="middle" {FONT} '
               f'font-weight="bold">{escape(x_name)}</text>')
    if y_name is not None:
        out.append(f'<text x="10" y="{top + size * len(y_labels) / 2}" {FONT} font-weight="bold" '
                   f'transform="rotate(-90 10 {top + size * len(y_labels) / 2})" text-anchor="middle">'
                   f"{escape(y_name)}</text>")
    for j, label in enumerate(y_labels):
        out.append(f'<text x="{left - 6}" y="{top + size * j + size / 2 + 4}" text-anchor="end" {FONT}>'
                   f"{escape(label)}</text>")
    for j, row in enumerate(cells):
        for i, cell in enumerate(row):
            x, y = left + size * i, top + size * j
            title = f"<title>{escape(cell.tooltip)}</title>"
            if cell.fitness is None or cell.program_id is None:
                out.append(f'<rect class="cell empty" x="{x}" y="{y}" width="{size - 2}" height="{size - 2}" '
                           f'fill="{EMPTY}">{title}</rect>')
                continue
            colour = ramp(cell.fitness, low, high)
            ink = "#000" if colour in RAMP[6:] else "#fff"
            text = (f'<text x="{x + (size - 2) / 2}" y="{y + size / 2 + 3}" text-anchor="middle" fill="{ink}" pointer-events="none" '
                    f'font-family="sans-serif" font-size="{10 if size > 30 else 7}">{cell.fitness:.2f}</text>')
            out.append(f'<a class="cell-link" href="{escape(link.format(cell.program_id))}">'
                       f'<rect class="cell filled" x="{x}" y="{y}" width="{size - 2}" height="{size - 2}" '
                       f'fill="{colour}" data-program="{cell.program_id}">{title}</rect>{text}</a>')
    legend_y = top + size * len(y_labels) + 14
    for k, colour in enumerate(RAMP):
        out.append(f'<rect x="{left + 16 * k}" y="{legend_y}" width="16" height="10" fill="{colour}"/>')
    out.append(f'<text x="{left + 16 * len(RAMP) + 6}" y="{legend_y + 9}" {FONT}>'
               f"{low:.3f}x to {high:.3f}x</text>" if values else
               f'<text x="{left + 16 * len(RAMP) + 6}" y="{legend_y + 9}" {FONT}>no elite yet</text>')
    out.append("</svg>")
    return Markup("".join(out))


def _ticks(low: float, high: float, n: int = 4) -> list[float]:
    if high <= low:
        return [low]
    return [low + (high - low) * k / n for k in range(n + 1)]


def line_chart(title: str, points: Sequence[tuple[float, float]], *, x_label: str, y_format: str = "{:.3f}",
               width: int = 460, height: int = 220) -> Markup:
    """One series of (x, y) points, in order; a single point is drawn as a dot."""
    left, right, top, bottom = 60, 14, 26, 36
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart line" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
           f'<text x="{left}" y="15" {FONT} font-weight="bold">{escape(title)}</text>']
    if not points:
        out.append(f'<text x="{left}" y="{height / 2}" {FONT}>nothing recorded yet</text></svg>')
        return Markup("".join(out))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5 * abs(y0 or 1) * 0.1, y1 + 0.5 * abs(y1 or 1) * 0.1
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(v: float) -> float:
        return left + (plot_w / 2 if x1 == x0 else (v - x0) / (x1 - x0) * plot_w)

    def sy(v: float) -> float:
        return top + plot_h - (v - y0) / (y1 - y0) * plot_h

    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#cfd8dc"/>')
    for v in _ticks(y0, y1):
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{_f(sy(v))}" y2="{_f(sy(v))}" stroke="#eceff1"/>'
                   f'<text x="{left - 4}" y="{_f(sy(v) + 4)}" text-anchor="end" {FONT}>'
                   f"{escape(y_format.format(v))}</text>")
    for v in _ticks(x0, x1) if x1 > x0 else [x0]:
        out.append(f'<text x="{_f(sx(v))}" y="{top + plot_h + 14}" text-anchor="middle" {FONT}>{v:.0f}</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" {FONT}>{escape(x_label)}</text>')
    path = " ".join(f"{_f(sx(x))},{_f(sy(y))}" for x, y in points)
    out.append(f'<polyline class="series" points="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    for x, y in points:
        out.append(f'<circle class="point" cx="{_f(sx(x))}" cy="{_f(sy(y))}" r="3" fill="#1f77b4">'
                   f"<title>{x:.0f}: {escape(y_format.format(y))}</title></circle>")
    out.append("</svg>")
    return Markup("".join(out))


@dataclass(frozen=True)
class ShapeBar:
    """A benchmark shape: the candidate's TFLOP/s with its interval where one exists, and the baseline's."""

    label: str
    tflops: float
    low: float | None
    high: float | None
    baseline_tflops: float
    speedup: float


def shape_chart(bars: Sequence[ShapeBar], *, width: int = 760, modelled: bool = False) -> Markup:
    """Horizontal bars per shape: the candidate (blue, with its 95% interval as a whisker) over
    the baseline (grey)."""
    left, right, top, row = 200, 90, 28, 34
    height = top + row * len(bars) + 30
    scale_max = max([b.tflops for b in bars] + [b.high or 0 for b in bars] + [b.baseline_tflops for b in bars] + [1])
    plot_w = width - left - right
    unit = "TFLOP/s (modelled)" if modelled else "TFLOP/s"

    def sx(v: float) -> float:
        return left + v / scale_max * plot_w

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart shapes" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{unit} per shape">',
           f'<rect x="{left}" y="6" width="10" height="10" fill="#1f77b4"/>'
           f'<text x="{left + 14}" y="15" {FONT}>this program</text>'
           f'<rect x="{left + 110}" y="6" width="10" height="10" fill="#b0bec5"/>'
           f'<text x="{left + 124}" y="15" {FONT}>baseline</text>'
           f'<text x="{left + 200}" y="15" {FONT}>{unit}; whiskers: 95% interval</text>']
    for k, b in enumerate(bars):
        y = top + row * k
        out.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" {FONT}>{escape(b.label)}</text>')
        out.append(f'<rect class="bar candidate" x="{left}" y="{y + 2}" width="{_f(sx(b.tflops) - left)}" '
                   f'height="12" fill="#1f77b4"><title>{b.tflops:.1f} {unit}, {b.speedup:.3f}x</title></rect>')
        out.append(f'<rect class="bar baseline" x="{left}" y="{y + 16}" width="{_f(sx(b.baseline_tflops) - left)}" '
                   f'height="8" fill="#b0bec5"><title>baseline {b.baseline_tflops:.1f} {unit}</title></rect>')
        if b.low is not None and b.high is not None:
            lo, hi = _f(sx(b.low)), _f(sx(b.high))
            out.append(f'<g class="interval" stroke="#0d3c61" stroke-width="1.5"><line x1="{lo}" x2="{hi}" '
                       f'y1="{y + 8}" y2="{y + 8}"/><line x1="{lo}" x2="{lo}" y1="{y + 3}" y2="{y + 13}"/>'
                       f'<line x1="{hi}" x2="{hi}" y1="{y + 3}" y2="{y + 13}"/></g>')
        out.append(f'<text x="{width - right + 6}" y="{y + 15}" {FONT}>{b.speedup:.3f}x</text>')
    axis_y = top + row * len(bars) + 4
    for v in _ticks(0, scale_max):
        out.append(f'<text x="{_f(sx(v))}" y="{axis_y + 12}" text-anchor="middle" {FONT}>{v:.0f}</text>')
    out.append("</svg>")
    return Markup("".join(out))
