"""Small, dependency-free SVG charts for the build report: a scatter with a Pareto front, grouped
vertical bars, and horizontal bars. Inline SVG keeps report.html self-contained (no scripts, no
network, no matplotlib); every mark carries a ``<title>`` so hovering shows its exact figure.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Callable, Sequence

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', 'Liberation Sans', sans-serif"
#: Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
INK, MUTED, GRID, FAIL, PASS = "#1f2933", "#616e7c", "#e4e7eb", "#c62828", "#2e7d32"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] with steps of 1, 2, 2.5 or 5 times a power of ten.

    >>> nice_ticks(0, 97)
    [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    """
    if not math.isfinite(lo) or not math.isfinite(hi):
        raise ValueError("ticks need finite bounds")
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step + 1e-9) * step
    ticks = []
    k = 0
    while True:
        t = start + k * step
        ticks.append(round(t, 12))
        if t >= hi - 1e-9 * step:
            break
        k += 1
    return ticks


@dataclass
class Point:
    x: float
    y: float
    label: str
    group: str
    tooltip: str = ""
    failed: bool = False


@dataclass
class Frame:
    """Plot area inside an SVG of ``width`` x ``height`` with margins for axes and a legend."""

    width: int = 760
    height: int = 420
    left: int = 72
    right: int = 24
    top: int = 56
    bottom: int = 64

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        return self.height - self.bottom

    @property
    def y1(self) -> float:
        return self.top


def _open(frame: Frame, title: str, subtitle: str = "") -> list[str]:
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {frame.width} {frame.height}" '
           f'width="{frame.width}" height="{frame.height}" role="img" aria-label="{_e(title)}" '
           f'font-family="{FONT}" font-size="12" fill="{INK}">',
           f'<rect width="{frame.width}" height="{frame.height}" fill="#ffffff"/>',
           f'<text x="{frame.left}" y="24" font-size="16" font-weight="600">{_e(title)}</text>']
    if subtitle:
        out.append(f'<text x="{frame.left}" y="42" font-size="12" fill="{MUTED}">{_e(subtitle)}</text>')
    return out


def _scale(lo: float, hi: float, a: float, b: float) -> Callable[[float], float]:
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _y_axis(frame: Frame, ticks: Sequence[float], sy, fmt: Callable[[float], str], label: str) -> list[str]:
    out = []
    for t in ticks:
        y = sy(t)
        out.append(f'<line x1="{_f(frame.x0)}" x2="{_f(frame.x1)}" y1="{_f(y)}" y2="{_f(y)}" stroke="{GRID}"/>')
        out.append(f'<text x="{_f(frame.x0 - 8)}" y="{_f(y + 4)}" text-anchor="end" fill="{MUTED}">{_e(fmt(t))}</text>')
    cy = (frame.y0 + frame.y1) / 2
    out.append(f'<text transform="translate(16 {_f(cy)}) rotate(-90)" text-anchor="middle" fill="{MUTED}">'
               f'{_e(label)}</text>')
    return out


def _legend(frame: Frame, entries: Sequence[tuple[str, str, str]], y: float) -> list[str]:
    """entries: (kind 'dot'|'line'|'dash'|'box', colour, text), laid out left to right."""
    out, x = [], frame.x0
    for kind, colour, text in entries:
        if kind == "ring":
            out.append(f'<circle cx="{_f(x + 6)}" cy="{_f(y - 4)}" r="4.5" fill="#ffffff" stroke="{colour}" '
                       f'stroke-width="2.5"/>')
        elif kind == "dot":
            out.append(f'<circle cx="{_f(x + 6)}" cy="{_f(y - 4)}" r="5" fill="{colour}"/>')
        elif kind == "box":
            out.append(f'<rect x="{_f(x)}" y="{_f(y - 10)}" width="12" height="12" rx="2" fill="{colour}"/>')
        else:
            dash = ' stroke-dasharray="5 4"' if kind == "dash" else ""
            out.append(f'<line x1="{_f(x)}" x2="{_f(x + 14)}" y1="{_f(y - 4)}" y2="{_f(y - 4)}" stroke="{colour}" '
                       f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{_f(x + 20)}" y="{_f(y)}">{_e(text)}</text>')
        x += 32 + 7 * len(text)
    return out


def _place_label(text: str, cx: float, cy: float, placed: list[tuple[float, float, float, float]],
                 frame: Frame) -> str:
    """A label beside its dot at the first candidate spot that overlaps nothing placed so far."""
    w, h = 6.6 * len(text), 13.0
    candidates = [(10, 4, "start"), (-10, 4, "end"), (10, -10, "start"), (10, 18, "start"), (-10, -10, "end"),
                  (-10, 18, "end"), (0, -13, "middle"), (0, 22, "middle"), (10, -24, "start"), (10, 32, "start"),
                  (-10, -24, "end"), (-10, 32, "end")]

    def box(dx: float, dy: float, anchor: str) -> tuple[float, float, float, float]:
        x0 = cx + dx - (w if anchor == "end" else w / 2 if anchor == "middle" else 0)
        return (x0, cy + dy - h + 3, x0 + w, cy + dy + 3)

    def free(b: tuple[float, float, float, float]) -> bool:
        inside = b[0] >= frame.x0 + 2 and b[2] <= frame.x1 - 2 and b[1] >= frame.y1 and b[3] <= frame.y0
        return inside and all(b[2] <= o[0] or b[0] >= o[2] or b[3] <= o[1] or b[1] >= o[3] for o in placed)

    chosen = next((c for c in candidates if free(box(*c))), candidates[0])
    placed.append(box(*chosen))
    dx, dy, anchor = chosen
    return (f'<text class="label" x="{_f(cx + dx)}" y="{_f(cy + dy)}" text-anchor="{anchor}" font-size="11.5">'
            f'{_e(text)}</text>')


def pareto_front(points: Sequence[Point], higher_is_better: bool = True) -> list[Point]:
    """The points no other point beats on both axes (smaller x and larger y, or smaller y for an error
    metric such as WAPE), by increasing x.

    >>> [p.label for p in pareto_front([Point(1, .8, "a", ""), Point(2, .7, "b", ""), Point(3, .9, "c", "")])]
    ['a', 'c']
    """
    sign = 1.0 if higher_is_better else -1.0
    front: list[Point] = []
    for p in sorted(points, key=lambda p: (p.x, -sign * p.y)):
        if not front or sign * p.y > sign * front[-1].y:
            front.append(p)
    return front


def scatter_chart(points: Sequence[Point], *, title: str, subtitle: str, x_label: str, y_label: str,
                  x_fmt: Callable[[float], str], y_fmt: Callable[[float], str],
                  hlines: Sequence[tuple[float, str]] = (), vlines: Sequence[tuple[float, str]] = (),
                  colours: dict[str, str] | None = None, frame: Frame | None = None,
                  higher_is_better: bool = True) -> str:
    """Scatter of ``points`` coloured by group, the Pareto front as a step line, and dashed
    reference lines (e.g. the teacher's metric, a size budget)."""
    frame = frame or Frame(width=1000, height=460, bottom=84)
    colours = colours or {}
    xs = [p.x for p in points] + [x for x, _ in vlines]
    ys = [p.y for p in points] + [y for y, _ in hlines]
    xt = nice_ticks(min(0.0, min(xs)), max(xs) * 1.08 if max(xs) > 0 else 1.0)
    ylo, yhi = min(ys), max(ys)
    pad = (yhi - ylo) * 0.15 or 0.01
    yt = nice_ticks(ylo - pad, yhi + pad)
    sx = _scale(xt[0], xt[-1], frame.x0, frame.x1)
    sy = _scale(yt[0], yt[-1], frame.y0, frame.y1)
    out = _open(frame, title, subtitle)
    out += _y_axis(frame, yt, sy, y_fmt, y_label)
    for t in xt:
        x = sx(t)
        out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(frame.y1)}" y2="{_f(frame.y0)}" stroke="{GRID}"/>')
        out.append(f'<text x="{_f(x)}" y="{_f(frame.y0 + 18)}" text-anchor="middle" fill="{MUTED}">'
                   f'{_e(x_fmt(t))}</text>')
    out.append(f'<text x="{_f((frame.x0 + frame.x1) / 2)}" y="{_f(frame.y0 + 38)}" text-anchor="middle" '
               f'fill="{MUTED}">{_e(x_label)}</text>')
    out.append(f'<rect x="{_f(frame.x0)}" y="{_f(frame.y1)}" width="{_f(frame.x1 - frame.x0)}" '
               f'height="{_f(frame.y0 - frame.y1)}" fill="none" stroke="#cbd2d9"/>')
    for y, text in hlines:
        out.append(f'<line class="ref" x1="{_f(frame.x0)}" x2="{_f(frame.x1)}" y1="{_f(sy(y))}" y2="{_f(sy(y))}" '
                   f'stroke="{MUTED}" stroke-width="1.5" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{_f(frame.x1 - 6)}" y="{_f(sy(y) - 6)}" text-anchor="end" fill="{MUTED}">'
                   f'{_e(text)}</text>')
    for x, text in vlines:
        out.append(f'<line class="ref" x1="{_f(sx(x))}" x2="{_f(sx(x))}" y1="{_f(frame.y1)}" y2="{_f(frame.y0)}" '
                   f'stroke="{FAIL}" stroke-width="1.5" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{_f(sx(x) - 6)}" y="{_f(frame.y1 + 14)}" text-anchor="end" fill="{FAIL}">'
                   f'{_e(text)}</text>')
    front = pareto_front(points, higher_is_better)
    if len(front) > 1:
        path = [f"M{_f(sx(front[0].x))},{_f(sy(front[0].y))}"]
        for prev, p in zip(front, front[1:]):
            path.append(f"H{_f(sx(p.x))}V{_f(sy(p.y))}")
        out.append(f'<path class="pareto" d="{"".join(path)}" fill="none" stroke="{INK}" stroke-width="1.5" '
                   f'stroke-opacity="0.55"/>')
    placed: list[tuple[float, float, float, float]] = []
    # Reference-line captions and every dot are obstacles for the point labels.
    for y, text in hlines:
        placed.append((frame.x1 - 6 - 6.6 * len(text), sy(y) - 17, frame.x1 - 6, sy(y) - 3))
    for x, text in vlines:
        placed.append((sx(x) - 6 - 6.6 * len(text), frame.y1 + 3, sx(x) - 6, frame.y1 + 17))
    for a, b in zip(front, front[1:]):  # the front's step line: keep labels off it
        placed.append((sx(a.x), sy(a.y) - 2, sx(b.x), sy(a.y) + 2))
        placed.append((sx(b.x) - 2, min(sy(a.y), sy(b.y)), sx(b.x) + 2, max(sy(a.y), sy(b.y))))
    dots = [(sx(p.x), sy(p.y)) for p in points]
    placed += [(cx - 8, cy - 8, cx + 8, cy + 8) for cx, cy in dots]
    marks, labels = [], []
    for p in sorted(points, key=lambda p: (p.x, -p.y)):
        cx, cy = sx(p.x), sy(p.y)
        colour = colours.get(p.group, PALETTE[0])
        # A failed build is drawn hollow: still findable by colour, visibly not shippable.
        style = (f'fill="#ffffff" stroke="{colour}" stroke-width="3"' if p.failed
                 else f'fill="{colour}" stroke="#ffffff" stroke-width="1.5"')
        status = "gate failed" if p.failed else "gate passed"
        marks.append(f'<circle class="point" cx="{_f(cx)}" cy="{_f(cy)}" r="6.5" {style}>'
                     f'<title>{_e(p.tooltip or p.label)} ({status})</title></circle>')
        labels.append(_place_label(p.label, cx, cy, placed, frame))
    out += marks + labels
    legend = [("dot", colours[g], g) for g in colours]
    legend.append(("line", INK, "Pareto front (smaller and more accurate)"))
    if any(p.failed for p in points):
        legend.append(("ring", MUTED, "hollow: gate failed"))
    out += _legend(frame, legend, frame.height - 14)
    out.append("</svg>")
    return "\n".join(out)


@dataclass
class BarGroup:
    label: str
    sublabel: str
    values: list[float | None]
    marker: float | None = None
    tooltip: list[str] = field(default_factory=list)


#: Values spanning more than this ratio get a log axis: a 0.01 ms student beside a 20 ms budget would
#: otherwise be a bar of zero pixels.
LOG_AXIS_SPAN = 30.0


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten covering [lo, hi] (with 2 and 5 between them when the range is short).

    >>> log_ticks(0.012, 20)
    [0.01, 0.1, 1.0, 10.0, 100.0]
    """
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if last == first:
        last += 1
    mults = (1, 2, 5) if last - first <= 2 else (1,)
    ticks = [round(m * 10.0 ** e, 12) for e in range(first, last + 1) for m in mults]
    ticks = [t for t in ticks if t <= 10.0 ** last]
    lo_t = max(t for t in ticks if t <= lo)
    hi_t = min(t for t in ticks if t >= hi)
    return [t for t in ticks if lo_t <= t <= hi_t]


def _log_scale(lo: float, hi: float, a: float, b: float) -> Callable[[float], float]:
    llo, lhi = math.log10(lo), math.log10(hi)
    span = (lhi - llo) or 1.0
    return lambda v: a + (math.log10(max(v, lo)) - llo) / span * (b - a)


def _overlaps(box: tuple[float, float, float, float], placed: Sequence[tuple[float, float, float, float]]) -> bool:
    return any(not (box[2] <= o[0] or box[0] >= o[2] or box[3] <= o[1] or box[1] >= o[3]) for o in placed)


def grouped_bar_chart(groups: Sequence[BarGroup], *, series: Sequence[str], colours: Sequence[str], title: str,
                      subtitle: str, y_label: str, y_fmt: Callable[[float], str], marker_label: str = "",
                      frame: Frame | None = None, log_axis: bool | None = None) -> str:
    """Vertical bars, one cluster per group and one bar per series; ``marker`` draws a red limit
    line across its cluster (e.g. the p90 budget).

    ``log_axis`` (default: when the values and markers span more than LOG_AXIS_SPAN) draws the
    y axis in powers of ten so small and large values are both readable. A value label that would
    overlap another label is turned vertical, and left out when it still would (the bar's tooltip
    keeps the figure); group labels are shortened to their cluster's width.
    """
    frame = frame or Frame(width=1000, height=440, bottom=108)
    positive = [v for g in groups for v in [*g.values, g.marker] if v is not None and v > 0]
    top = max(positive + [1e-9])
    if log_axis is None:
        log_axis = bool(positive) and top / min(positive) > LOG_AXIS_SPAN
    if log_axis and positive:
        yt = log_ticks(min(positive) / 3, top * 1.15)  # a decade below the smallest: it stays a visible bar
        sy = _log_scale(yt[0], yt[-1], frame.y0, frame.y1)
        y_label = f"{y_label} (log scale)"
    else:
        yt = nice_ticks(0.0, top * 1.08)
        sy = _scale(yt[0], yt[-1], frame.y0, frame.y1)
    out = _open(frame, title, subtitle)
    out += _y_axis(frame, yt, sy, y_fmt, y_label)
    slot = (frame.x1 - frame.x0) / max(1, len(groups))
    bar_w = min(30.0, slot * 0.8 / max(1, len(series)))
    placed: list[tuple[float, float, float, float]] = []  # bars first, then each label placed
    pending: list[tuple[float, float, str]] = []
    labels: list[str] = []
    for gi, g in enumerate(groups):
        cx = frame.x0 + slot * (gi + 0.5)
        left = cx - bar_w * len(series) / 2
        for si, v in enumerate(g.values):
            if v is None:
                continue
            x, y = left + si * bar_w, sy(v)
            tip = g.tooltip[si] if si < len(g.tooltip) else f"{series[si]}: {y_fmt(v)}"
            out.append(f'<rect class="bar" x="{_f(x + 1)}" y="{_f(y)}" width="{_f(bar_w - 2)}" '
                       f'height="{_f(max(frame.y0 - y, 1.0))}" rx="2" fill="{colours[si]}"><title>{_e(tip)}</title>'
                       f'</rect>')
            placed.append((x + 1, y, x + bar_w - 1, frame.y0))
            pending.append((x + bar_w / 2, y, y_fmt(v)))
        if g.marker is not None and g.marker > 0:
            my = sy(g.marker)
            half = bar_w * len(series) / 2 + 8
            out.append(f'<line class="budget" x1="{_f(cx - half)}" x2="{_f(cx + half)}" y1="{_f(my)}" y2="{_f(my)}" '
                       f'stroke="{FAIL}" stroke-width="2" stroke-dasharray="5 3"><title>{_e(marker_label)}: '
                       f'{_e(y_fmt(g.marker))}</title></line>')
        fit = max(4, int(slot / 7.5))
        name = g.label if len(g.label) <= fit else g.label[:fit - 1] + "…"
        out.append(f'<text x="{_f(cx)}" y="{_f(frame.y0 + 18)}" text-anchor="middle" font-weight="600">'
                   f'{_e(name)}<title>{_e(g.label)}</title></text>')
        sub_fit = max(4, int(slot / 6.4))
        for li, line in enumerate(g.sublabel.split("\n")):
            line = line if len(line) <= sub_fit else line[:sub_fit - 1] + "…"
            out.append(f'<text x="{_f(cx)}" y="{_f(frame.y0 + 33 + 14 * li)}" text-anchor="middle" font-size="11" '
                       f'fill="{MUTED}">{_e(line)}</text>')
    for bx, y, text in pending:
        w = 5.8 * len(text) + 2
        flat = (bx - w / 2, y - 15, bx + w / 2, y - 3)
        upright = (bx - 5, y - 5 - w, bx + 5, y - 3)
        if flat[0] >= frame.x0 - 4 and not _overlaps(flat, placed):
            placed.append(flat)
            labels.append(f'<text class="value" x="{_f(bx)}" y="{_f(y - 5)}" text-anchor="middle" '
                          f'font-size="10" fill="{MUTED}">{_e(text)}</text>')
        elif upright[1] >= frame.y1 - 40 and not _overlaps(upright, placed):
            placed.append(upright)
            labels.append(f'<text class="value" x="{_f(bx + 3.5)}" y="{_f(y - 5)}" font-size="10" '
                          f'fill="{MUTED}" transform="rotate(-90 {_f(bx + 3.5)} {_f(y - 5)})">{_e(text)}</text>')
    out += labels  # drawn last so no bar covers a figure
    out.append(f'<line x1="{_f(frame.x0)}" x2="{_f(frame.x1)}" y1="{_f(frame.y0)}" y2="{_f(frame.y0)}" '
               f'stroke="#9aa5b1"/>')
    legend = [("box", c, s) for s, c in zip(series, colours)]
    if marker_label and any(g.marker is not None for g in groups):
        legend.append(("dash", FAIL, marker_label))
    out += _legend(frame, legend, frame.height - 16)
    out.append("</svg>")
    return "\n".join(out)


@dataclass
class HBar:
    label: str
    value: float
    colour: str
    value_text: str
    detail: str = ""


def hbar_chart(rows: Sequence[HBar], *, title: str, subtitle: str, label_width: int = 270,
               width: int = 1000) -> str:
    """Horizontal bars, largest first as given, label on the left and the figure on the right."""
    row_h = 24
    frame = Frame(width=width, height=64 + row_h * len(rows) + 16, left=label_width, right=290, top=56, bottom=16)
    top = max([r.value for r in rows] + [1e-9])
    sx = _scale(0.0, top, frame.x0, frame.x1)
    out = _open(frame, title, subtitle)
    for i, r in enumerate(rows):
        y = frame.top + i * row_h
        # ~7 px per character at 12 px: keep the label inside its column.
        fit = max(8, int((label_width - 16) / 7.2))
        label = r.label if len(r.label) <= fit else "…" + r.label[-(fit - 1):]
        out.append(f'<text x="{_f(frame.x0 - 8)}" y="{_f(y + 16)}" text-anchor="end">{_e(label)}'
                   f'<title>{_e(r.label)}</title></text>')
        w = max(1.0, sx(r.value) - frame.x0)
        out.append(f'<rect class="bar" x="{_f(frame.x0)}" y="{_f(y + 4)}" width="{_f(w)}" height="{row_h - 8}" '
                   f'rx="2" fill="{r.colour}"><title>{_e(r.label)}: {_e(r.value_text)} {_e(r.detail)}</title></rect>')
        out.append(f'<text x="{_f(frame.x0 + w + 6)}" y="{_f(y + 16)}" fill="{MUTED}">{_e(r.value_text)}'
                   f'{(" · " + _e(r.detail)) if r.detail else ""}</text>')
    out.append("</svg>")
    return "\n".join(out)
