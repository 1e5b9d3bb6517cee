"""The latency chart stays readable when values span 1000x: log axis, visible bars, no label overlaps."""
from __future__ import annotations

import re

from edge_kd.report import svg

SERIES = ["p50", "p90", "p99"]
COLOURS = ["#9ecae1", "#2171b5", "#08306b"]


def _chart(groups, **kw):
    return svg.grouped_bar_chart(groups, series=SERIES, colours=COLOURS, title="Latency", subtitle="",
                                 y_label="ms", y_fmt=lambda v: f"{v:g}", marker_label="p90 budget", **kw)


def _bars(text):
    return [(float(x), float(y), float(w), float(h)) for x, y, w, h in
            re.findall(r'<rect class="bar" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', text)]


def _label_boxes(text):
    boxes = []
    for x, y, attrs, value in re.findall(r'<text class="value" x="([\d.]+)" y="([\d.]+)"([^>]*)>([^<]+)</text>',
                                         text):
        x, y, w, rot = float(x), float(y), 5.8 * len(value) + 2, "rotate(" in attrs
        boxes.append((x - 3.5 - 5, y - w, x - 3.5 + 5, y + 2) if rot else (x - w / 2, y - 10, x + w / 2, y + 2))
    return boxes


def _students_and_budgets():
    return [svg.BarGroup(f"student-{i}", "xnnpack .pte", [0.010 + i * 0.001, 0.012 + i * 0.001, 0.015 + i * 0.001],
                         marker=20.0) for i in range(6)] + \
           [svg.BarGroup("teacher", "ort .ort", [14.0, 17.5, 24.0], marker=20.0)]


def test_values_spanning_1000x_get_a_log_axis_and_visible_bars():
    text = _chart(_students_and_budgets())
    assert "(log scale)" in text
    bars = _bars(text)
    assert len(bars) == 21
    heights = [h for *_, h in bars]
    # on a linear axis a 0.01 ms bar beside a 24 ms one is 0.1 px tall; on the log axis it is a real bar
    assert min(heights) > 20
    assert max(heights) / min(heights) < 10
    # ticks are powers of ten
    assert re.search(r'>0\.01<', text) and re.search(r'>10<', text)


def test_value_labels_never_overlap_each_other_or_bars():
    text = _chart(_students_and_budgets())
    boxes = _label_boxes(text)
    assert boxes, "at least some values are labelled"
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    for a in boxes:
        for x, y, w, h in _bars(text):
            assert a[2] <= x or x + w <= a[0] or a[3] <= y or y + h <= a[1], (a, (x, y, w, h))


def test_a_narrow_range_keeps_the_linear_axis():
    text = _chart([svg.BarGroup("a", "", [8.0, 9.0, 11.0], marker=12.0),
                   svg.BarGroup("b", "", [5.0, 5.5, 6.0], marker=12.0)])
    assert "(log scale)" not in text
    assert re.search(r'>0<', text)  # a linear axis starts at zero


def test_long_group_labels_are_shortened_to_their_slot():
    groups = [svg.BarGroup("a-very-long-build-name-that-would-run-into-its-neighbour-" + str(i), "", [1.0, 2.0, 3.0])
              for i in range(12)]
    text = _chart(groups)
    assert "…" in text and text.count("<title>a-very-long-build-name") == 12


def test_log_ticks():
    assert svg.log_ticks(0.012, 20) == [0.01, 0.1, 1.0, 10.0, 100.0]
    assert svg.log_ticks(3, 40) == [2.0, 5.0, 10.0, 20.0, 50.0]
