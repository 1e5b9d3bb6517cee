"""``edge-kd report``: one page comparing builds across targets and variants.

Reads the recorded figures of each build (through the gate, so the page shows exactly what the
gate judged) and writes ``report.md`` and a self-contained ``report.html`` (inline SVG, inline CSS,
no script, no network): size vs task metric with the Pareto front, latency percentiles per runtime,
where each bundle's bytes go, and each build's gate table. Imports nothing heavy.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Sequence

from edge_kd.errors import InputError
from edge_kd.gate import GateReport, bytes_breakdown, evaluate, load_build
from edge_kd.gate.bundle import short_name
from edge_kd.gate.evaluate import artifact_choice, choice_core
from edge_kd.gate.formats import breakdown_rows, markdown_section, write_output
from edge_kd.metrics import higher_is_better
from edge_kd.report import svg
from edge_kd.units import format_bytes

REPORT_FILES = ("report.md", "report.html")
#: Tensors shown one by one in the per-layer charts (the rest are summed).
TOP_TENSORS = 12
_DTYPE_COLOURS = {"int8": "#0072B2", "uint8": "#0072B2", "int4": "#56B4E9", "int32": "#E69F00",
                  "float32": "#D55E00", "float16": "#CC79A7", "bfloat16": "#CC79A7"}
_LATENCY_SERIES = ("p50", "p90", "p99")
_LATENCY_COLOURS = ("#9ecae1", "#2171b5", "#08306b")


@dataclass
class ReportEntry:
    """One build as the report sees it."""

    label: str
    path: str
    manifest: dict[str, Any]
    gate: GateReport

    @property
    def summary(self) -> dict[str, Any]:
        return self.gate.summary


def _labels(paths: Sequence[Path]) -> list[str]:
    """Short unique names: the folder name, or more of the path where two folders share a name."""
    depth = 1
    while True:
        labels = ["/".join(p.resolve().parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels) or depth > 6:
            return labels
        depth += 1


def collect(builds: Sequence[str | os.PathLike[str]]) -> list[ReportEntry]:
    """Load and gate each build (InputError on anything unreadable, before anything is written)."""
    if not builds:
        raise InputError("no build given; pass one or more build directories")
    dirs = []
    for ref in builds:
        p = Path(ref)
        if not p.exists():
            raise InputError(f"{p}: no such build directory")
        dirs.append(p if p.is_dir() else p.parent)
    entries = []
    for ref, label in zip(builds, _labels(dirs)):
        manifest, _, _ = load_build(ref)
        entries.append(ReportEntry(label=label, path=str(ref), manifest=manifest, gate=evaluate(ref)))
    return entries


def check_out_dir(out: Path) -> None:
    """Refuse an --out that is a file, or a non-empty folder holding none of our report files."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    if out.is_dir():
        names = {p.name for p in out.iterdir()}
        if names and not names & set(REPORT_FILES):
            raise InputError(f"--out {out}: folder is not empty and holds no earlier report; refusing to write "
                             "among someone else's files (choose an empty or new folder)")


# ---- figures --------------------------------------------------------------------------------------
def _bytes_axis(max_bytes: float) -> tuple[float, str]:
    return (1024.0 ** 2, "MiB") if max_bytes >= 1024 ** 2 else (1024.0, "KiB")


def _group_colours(groups: Sequence[str]) -> dict[str, str]:
    return {g: svg.PALETTE[i % len(svg.PALETTE)] for i, g in enumerate(dict.fromkeys(groups))}


def size_accuracy_charts(entries: Sequence[ReportEntry]) -> list[str]:
    """One scatter per task-metric name: bundle bytes vs metric, coloured by target, Pareto front."""
    by_metric: dict[str, list[ReportEntry]] = {}
    for e in entries:
        s = e.summary
        if s["bundle_bytes"] is not None and s["task_metric"] is not None:
            by_metric.setdefault(s["task_metric"]["name"], []).append(e)
    charts = []
    colours = _group_colours([e.gate.target for e in entries])
    for metric, group in by_metric.items():
        scale, unit = _bytes_axis(max(e.summary["bundle_bytes"] for e in group))
        points = [svg.Point(x=e.summary["bundle_bytes"] / scale, y=e.summary["task_metric"]["value"], label=e.label,
                            group=e.gate.target, failed=not e.gate.passed,
                            tooltip=f"{e.label} ({e.gate.target}): {format_bytes(e.summary['bundle_bytes'])}, "
                                    f"{metric} {e.summary['task_metric']['value']:.4f}, gate "
                                    f"{'passed' if e.gate.passed else 'failed'}")
                  for e in group]
        teachers = sorted({round(e.summary["teacher_metric"]["value"], 6) for e in group
                           if e.summary["teacher_metric"] and e.summary["teacher_metric"]["name"] == metric})
        hlines = [(t, f"teacher (fp32) {t:.4f}") for t in teachers[:3]]
        budgets = sorted({e.summary["budgets"]["artifact_size"] for e in group})
        vlines = [(b / scale, f"size budget {format_bytes(b)}") for b in budgets[:2]]
        charts.append(svg.scatter_chart(
            points, title=f"Bundle size vs {metric}",
            subtitle="Each dot is a build; the line joins builds no other build beats on both size and "
                     f"{metric}" + ("." if higher_is_better(metric) else " (lower is better)."),
            x_label=f"bundle size ({unit}, model + preprocessing)", y_label=metric,
            x_fmt=lambda v: f"{v:g}", y_fmt=lambda v: f"{v:.3f}".rstrip("0").rstrip(".") if v else "0",
            hlines=hlines, vlines=vlines, colours={g: colours[g] for g in dict.fromkeys(e.gate.target for e in group)},
            higher_is_better=higher_is_better(metric)))
    return charts


def latency_chart(entries: Sequence[ReportEntry]) -> str | None:
    """p50/p90/p99 bars per build, clustered by runtime, with each target's p90 budget."""
    rows = [e for e in entries if any(e.summary["latency_ms"].get(q) is not None for q in _LATENCY_SERIES)]
    if not rows:
        return None
    rows.sort(key=lambda e: (e.summary["runtime"], e.label))
    groups = []
    for e in rows:
        lat = e.summary["latency_ms"]
        teacher = e.summary["teacher_latency_ms"].get("p90")
        speed = f"\n{teacher / lat['p90']:.1f}× faster" if teacher and lat.get("p90") else ""
        groups.append(svg.BarGroup(label=e.label, sublabel=f"{e.summary['runtime']} .{e.summary['format']}{speed}",
                                   values=[lat.get(q) for q in _LATENCY_SERIES],
                                   marker=e.summary["budgets"]["latency_p90_ms"],
                                   tooltip=[f"{e.label} {q}: {lat[q]:.2f} ms" if lat.get(q) is not None else ""
                                            for q in _LATENCY_SERIES]))
    return svg.grouped_bar_chart(groups, series=[f"{q} latency" for q in _LATENCY_SERIES], colours=_LATENCY_COLOURS,
                                 title="Latency percentiles per runtime",
                                 subtitle="Measured in the target runtime on one emulated phone core; dashed red: "
                                          "the target's p90 budget; ×: p90 speed-up over the fp32 teacher.",
                                 y_label="milliseconds", y_fmt=lambda v: f"{v:g}", marker_label="p90 budget")


def layer_chart(entry: ReportEntry) -> str:
    """Horizontal bars of the largest tensors of the bundle, the rest summed, and non-tensor bytes."""
    bd = bytes_breakdown(entry.manifest, top=TOP_TENSORS)
    rows = []
    for item in bd["items"]:
        if item["kind"] == "tensor":
            colour = _DTYPE_COLOURS.get(item.get("dtype") or "", "#52606d")
            shape = "×".join(str(d) for d in item["shape"]) if item.get("shape") else ""
            detail = " ".join(x for x in (item.get("dtype") or "", shape) if x)
        else:
            colour = {"rest": "#9aa5b1", "overhead": "#cbd2d9", "file": "#009E73"}[item["kind"]]
            detail = ""
        label = short_name(item["name"]) if item["kind"] == "tensor" else item["name"]
        rows.append(svg.HBar(label=label, value=item["bytes"], colour=colour,
                             value_text=f"{format_bytes(item['bytes'])} ({item['share'] * 100:.1f}%)", detail=detail))
    budget = entry.summary["budgets"]["artifact_size"]
    note = "" if bd["tensors_recorded"] else "; no per-tensor sizes recorded"
    return svg.hbar_chart(rows, title=f"Where the bytes go: {entry.label}",
                          subtitle=f"{format_bytes(bd['total_bytes'])} bundle of a {format_bytes(budget)} budget, "
                                   f"{bd['tensor_count']} tensors, largest first{note}")


# ---- HTML -----------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#1f2933;margin:0;
background:#f5f7fa}
main{max-width:1180px;margin:0 auto;padding:28px 32px 48px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:36px 0 10px;border-bottom:1px solid #e4e7eb;
padding-bottom:6px}h3{font-size:15px;margin:22px 0 8px}
.meta{color:#616e7c;font-size:13px}
.card{background:#fff;border:1px solid #e4e7eb;border-radius:8px;padding:14px;margin:12px 0;overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{white-space:nowrap;padding:6px 9px;border-bottom:1px solid #eef1f4;text-align:left;vertical-align:top}
th{background:#f0f3f7;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}
.pill{display:inline-block;border-radius:10px;padding:1px 9px;font-weight:600;font-size:12px;white-space:nowrap}
.pass{background:#e3f4e4;color:#2e7d32}.fail{background:#fde7e7;color:#c62828}
table.gate{table-layout:fixed}table.gate td.reason{white-space:normal}
table.gate td{overflow:hidden;text-overflow:ellipsis}
.verdict{font-size:15px;margin:14px 0}
svg{max-width:100%;height:auto}
"""


def _pill(passed: bool) -> str:
    return '<span class="pill pass">✓ pass</span>' if passed else '<span class="pill fail">✗ fail</span>'


def _metric_text(s: dict[str, Any]) -> str:
    m, t = s["task_metric"], s["teacher_metric"]
    if m is None:
        return "missing"
    text = f"{m['value']:.4f} {m['name']}"
    if t is not None and t["name"] == m["name"]:
        text += f" ({(m['value'] - t['value']) * 100:+.2f}pt"
        text += ")" if higher_is_better(m["name"]) else ", lower is better)"
    return text


def _ms(v: float | None) -> str:
    return "missing" if v is None else f"{v:.2f}"


def _has_arm(entries: Sequence[ReportEntry]) -> bool:
    return any(e.summary.get("arm_estimate_ms") is not None for e in entries)


def _summary_rows(entries: Sequence[ReportEntry]) -> list[list[str]]:
    rows = []
    arm = _has_arm(entries)
    for e in entries:
        s = e.summary
        lat = s["latency_ms"]
        rows.append([e.label, e.gate.target, f"{s['runtime']} .{s['format']}",
                     format_bytes(s["bundle_bytes"]) if s["bundle_bytes"] is not None else "missing",
                     format_bytes(s["bundle_gzip_bytes"]) if s["bundle_gzip_bytes"] is not None else "missing",
                     _metric_text(s), _ms(lat.get("p50")), _ms(lat.get("p90")), _ms(lat.get("p99"))]
                    + ([_ms(s.get("arm_estimate_ms")) if s.get("arm_estimate_ms") is not None else "-"] if arm else []))
    return rows


_SUMMARY_HEADERS = ["build", "target", "runtime", "bundle", "gzip", "task metric (vs teacher)",
                    "p50 ms", "p90 ms", "p99 ms"]
_NUMERIC = {3, 4, 5, 6, 7, 8, 9}


def _summary_headers(entries: Sequence[ReportEntry]) -> list[str]:
    """Host percentiles, and beside them the ARM estimate when any build emulated a core (edge_kd.emulate)."""
    return _SUMMARY_HEADERS + (["ARM est. ms"] if _has_arm(entries) else [])


def render_html(entries: Sequence[ReportEntry], title: str, generated: str) -> str:
    e_ = escape
    passed = sum(1 for e in entries if e.gate.passed)
    parts = [f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">'
             f'<title>{e_(title)}</title><style>{_CSS}</style></head><body><main>',
             f"<h1>{e_(title)}</h1>",
             f'<div class="meta">{len(entries)} build(s) · generated {e_(generated)} by edge-kd report</div>',
             f'<p class="verdict">{_pill(passed == len(entries))} {passed} of {len(entries)} build(s) pass '
             f'their gate</p>']
    # Summary table
    head = "".join(f'<th class="num">{e_(h)}</th>' if i in _NUMERIC else f"<th>{e_(h)}</th>"
                   for i, h in enumerate(_summary_headers(entries) + ["gate"]))
    body = []
    for e, row in zip(entries, _summary_rows(entries)):
        cells = "".join(f'<td class="num">{e_(c)}</td>' if i in _NUMERIC else f"<td>{e_(c)}</td>"
                        for i, c in enumerate(row))
        body.append(f"<tr>{cells}<td>{_pill(e.gate.passed)}</td></tr>")
    parts += ['<h2>Builds</h2><div class="card"><table>', f"<tr>{head}</tr>", *body, "</table></div>"]

    parts.append("<h2>Size vs accuracy</h2>")
    charts = size_accuracy_charts(entries)
    parts += [f'<div class="card figure" id="size-accuracy-{i}">{c}</div>' for i, c in enumerate(charts)] or \
        ['<p class="meta">No build records both a bundle size and a task metric.</p>']
    unplotted = [e.label for e in entries if e.summary["bundle_bytes"] is None or e.summary["task_metric"] is None]
    if unplotted and charts:
        parts.append(f'<p class="meta">Not plotted (size or task metric not recorded): {e_(", ".join(unplotted))}</p>')
    parts.append("<h2>Latency</h2>")
    lat = latency_chart(entries)
    parts.append(f'<div class="card figure" id="latency">{lat}</div>' if lat else
                 '<p class="meta">No build records latency percentiles.</p>')
    unplotted = [e.label for e in entries if e.summary["latency_ms"].get("p90") is None]
    if unplotted and lat:
        parts.append(f'<p class="meta">Not plotted (latency not recorded): {e_(", ".join(unplotted))}</p>')
    choice = _choice_html(entries)
    if choice:
        parts += ["<h2>Shipped artifact</h2>", '<p class="meta">Every artifact the quantize stage built, measured '
                  "side by side in the target runtime; the fastest one within every budget ships (profile "
                  "key quantization.ship).</p>", *choice]
    sizing = _sizing_html(entries)
    if sizing:
        parts += ["<h2>Student size search</h2>", '<p class="meta">Every student size the distill stage tried: '
                  "exported for real (bytes) and trained (validation metric); recipe key [student] objective.</p>",
                  *sizing]
    parts.append("<h2>Where the bytes go</h2>")
    for i, e in enumerate(entries):
        parts.append(f'<div class="card figure" id="layers-{i}">{layer_chart(e)}</div>')
    parts.append("<h2>Gate</h2>")
    for e in entries:
        g = e.gate
        src = "budgets recorded in the build" if g.target_source == "manifest" else f"budgets from {g.target_source}"
        parts.append(f"<h3>{_pill(g.passed)} {e_(e.label)} → {e_(g.target)}</h3>"
                     f'<div class="meta">{e_(e.path)} · {e_(src)}</div>')
        rows = "".join(
            f"<tr><td>{_pill(c.passed)}</td><td>{e_(c.title)}<div class='meta'>{e_(c.name)}</div></td>"
            f'<td class="num">{e_(c.value_text)}</td><td class="num">{e_(c.limit_text)}</td>'
            f'<td class="reason">{e_(c.reason)}</td></tr>'
            for c in g.checks)
        parts.append('<div class="card"><table class="gate"><colgroup><col style="width:74px"><col style="width:230px">'
                     '<col style="width:150px"><col style="width:170px"><col></colgroup>'
                     '<tr><th></th><th>check</th><th class="num">value</th><th class="num">limit</th><th>details</th>'
                     f'</tr>{rows}</table></div>')
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def _choice_rows(entry: ReportEntry) -> tuple[dict[str, Any] | None, list[str], list[list[str]]]:
    """The quantize stage's candidates of one build as table rows (shipped one first), with their headers:
    an emulated choice (``[quantization] ship_latency``) shows the host p50 beside the ARM estimate that
    decided it."""
    selection = artifact_choice(entry.manifest)
    if selection is None:
        return None, [], []
    candidates = sorted(selection.get("candidates") or [], key=lambda c: not c.get("shipped"))
    core = choice_core(selection)

    def ms(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, (int, float)) else "n/a"

    rows = []
    for c in candidates:
        metric = c.get("metric")
        latency = [ms(c.get("host_p50_ms")), ms((c.get("arm") or {}).get("estimate_ms"))] if core else \
            [ms(c.get("p50_ms"))]
        rows.append([("▶ " if c.get("shipped") else "") + str(c.get("name")),
                     format_bytes(c["bytes"]) if isinstance(c.get("bytes"), int) else "n/a",
                     f"{metric:.4f}" if isinstance(metric, (int, float)) else "n/a", *latency,
                     "yes" if c.get("within_budget") else "no", str(c.get("reason", ""))])
    latency_headers = ["host p50 ms", f"{core} est. ms (decides)"] if core else ["p50 ms"]
    return selection, ["candidate", "bytes", "metric", *latency_headers, "within budget", "decision"], rows


def _choice_html(entries: Sequence[ReportEntry]) -> list[str]:
    e_ = escape
    parts = []
    for e in entries:
        selection, headers, rows = _choice_rows(e)
        if selection is None:
            continue
        head = "".join(f"<th>{h}</th>" for h in headers)
        numeric = range(1, len(headers) - 2)
        body = "".join("<tr>" + "".join(f'<td class="num">{e_(c)}</td>' if i in numeric else f"<td>{e_(c)}</td>"
                                        for i, c in enumerate(r)) + "</tr>" for r in rows)
        parts.append(f"<h3>{e_(e.label)}: ships {e_(str(selection.get('shipped')))}</h3>"
                     f'<div class="meta">policy {e_(str(selection.get("policy")))} · {e_(str(selection.get("reason")))}'
                     f"</div><div class=\"card\"><table class=\"choice\"><tr>{head}</tr>{body}</table></div>")
    return parts


def _sizing_of(entry: ReportEntry) -> dict[str, Any] | None:
    """The distill stage's size search of one build, when it tried candidates (objective
    ``smallest-within-drop``): each with its bytes and validation metric."""
    for record in entry.manifest.get("stages") or []:
        if record.get("name") == "distill":
            sizing = (record.get("details") or {}).get("sizing") or {}
            if sizing.get("candidates"):
                return sizing
    return None


_SIZING_HEADERS = ["knob value", "params", "bundle", "bundle gzip", "val metric", "within drop"]


def _sizing_rows(sizing: dict[str, Any]) -> list[list[str]]:
    """Candidates by size, the chosen one marked."""
    rows = []
    for c in sorted(sizing["candidates"], key=lambda c: c.get("bundle_bytes") or 0):
        chosen = c.get("value") == sizing.get("value")
        metric = c.get("val_metric")
        rows.append([("▶ " if chosen else "") + f"{sizing.get('knob')}={c.get('value')}",
                     f"{c['params']:,}" if isinstance(c.get("params"), int) else "n/a",
                     format_bytes(c["bundle_bytes"]) if isinstance(c.get("bundle_bytes"), int) else "n/a",
                     format_bytes(c["bundle_gzip_bytes"]) if isinstance(c.get("bundle_gzip_bytes"), int) else "n/a",
                     f"{metric:.4f}" if isinstance(metric, (int, float)) else "n/a",
                     "yes" if c.get("within_drop") else "no"])
    return rows


def _sizing_note(sizing: dict[str, Any]) -> str:
    teacher, floor = sizing.get("teacher_val_metric"), sizing.get("min_allowed_val_metric")
    text = f"objective {sizing.get('objective')}: the smallest student whose validation metric is within " \
           f"{sizing.get('accuracy_drop')} of the teacher's"
    if isinstance(teacher, (int, float)) and isinstance(floor, (int, float)):
        text += f" ({teacher:.4f}, so >= {floor:.4f})"
    if sizing.get("within_drop") is False:
        text += "; no size under the budget reaches it, the largest one is kept"
    return text


def sizing_chart(entry: ReportEntry, sizing: dict[str, Any]) -> str:
    """Candidates of the size search: bundle bytes vs validation metric, with the allowed floor."""
    cands = [c for c in sizing["candidates"] if isinstance(c.get("bundle_bytes"), int)
             and isinstance(c.get("val_metric"), (int, float))]
    scale, unit = _bytes_axis(max(c["bundle_bytes"] for c in cands))
    groups = {True: "within the drop", False: "outside the drop"}
    points = [svg.Point(x=c["bundle_bytes"] / scale, y=c["val_metric"],
                        label=("▶ " if c.get("value") == sizing.get("value") else "") + str(c.get("value")),
                        group=groups[bool(c.get("within_drop"))], failed=not c.get("within_drop"),
                        tooltip=f"{sizing.get('knob')}={c.get('value')}: {format_bytes(c['bundle_bytes'])}, "
                                f"val {c['val_metric']:.4f}")
              for c in cands]
    hlines = [(v, f"{name} {v:.4f}") for v, name in ((sizing.get("teacher_val_metric"), "teacher (val)"),
                                                    (sizing.get("min_allowed_val_metric"), "allowed floor"))
              if isinstance(v, (int, float))]
    budget = sizing.get("budget_bytes")
    vlines = [(budget / scale, f"size budget {format_bytes(budget)}")] if isinstance(budget, int) else []
    return svg.scatter_chart(points, title=f"{entry.label}: student size search",
                             subtitle=_sizing_note(sizing), x_label=f"bundle size ({unit})",
                             y_label="validation metric", x_fmt=lambda v: f"{v:g}", y_fmt=lambda v: f"{v:.3f}",
                             hlines=hlines, vlines=vlines,
                             colours={groups[True]: svg.PALETTE[0], groups[False]: svg.PALETTE[1]})


def _sizing_html(entries: Sequence[ReportEntry]) -> list[str]:
    e_ = escape
    parts = []
    for i, e in enumerate(entries):
        sizing = _sizing_of(e)
        if sizing is None:
            continue
        head = "".join(f"<th>{h}</th>" for h in _SIZING_HEADERS)
        body = "".join("<tr>" + "".join(f'<td class="num">{e_(c)}</td>' if 0 < j < 5 else f"<td>{e_(c)}</td>"
                                        for j, c in enumerate(r)) + "</tr>" for r in _sizing_rows(sizing))
        parts.append(f"<h3>{e_(e.label)}: {e_(str(sizing.get('knob')))}={e_(str(sizing.get('value')))}</h3>"
                     f'<div class="meta">{e_(_sizing_note(sizing))}</div>'
                     f'<div class="card figure" id="sizing-{i}">{sizing_chart(e, sizing)}</div>'
                     f'<div class="card"><table class="sizing"><tr>{head}</tr>{body}</table></div>')
    return parts


# ---- Markdown -------------------------------------------------------------------------------------
def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(entries: Sequence[ReportEntry], title: str, generated: str) -> str:
    passed = sum(1 for e in entries if e.gate.passed)
    lines = [f"# {title}", "", f"{len(entries)} build(s), {passed} pass their gate · generated {generated}. "
             "Figures: report.html.", "", "## Builds", "",
             "| " + " | ".join(_summary_headers(entries) + ["gate"]) + " |",
             "|" + "|".join("---:" if i in _NUMERIC else "---" for i in range(len(_summary_headers(entries)))) + "|:-:|"]
    for e, row in zip(entries, _summary_rows(entries)):
        lines.append("| " + " | ".join(_md(c) for c in row) + f" | {'✅' if e.gate.passed else '❌'} |")
    lines += ["", "## Pareto front (size vs task metric)", ""]
    by_metric: dict[str, list[ReportEntry]] = {}
    for e in entries:
        if e.summary["bundle_bytes"] is not None and e.summary["task_metric"] is not None:
            by_metric.setdefault(e.summary["task_metric"]["name"], []).append(e)
    if not by_metric:
        lines.append("No build records both a bundle size and a task metric.")
    for metric, group in by_metric.items():
        pts = [svg.Point(e.summary["bundle_bytes"], e.summary["task_metric"]["value"], e.label, e.gate.target)
               for e in group]
        front = svg.pareto_front(pts, higher_is_better(metric))
        failed = {e.label for e in group if not e.gate.passed}
        steps = [f"{_md(p.label)} ({format_bytes(p.x)}, {p.y:.4f}{', gate ❌' if p.label in failed else ''})"
                 for p in front]
        lines.append(f"- **{metric}**: " + " → ".join(steps))
    lines += ["", "## Latency (ms, measured in the target runtime)", "",
              "| build | runtime | p50 | p90 | p99 | p90 budget | teacher p90 | speed-up |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for e in sorted(entries, key=lambda e: (e.summary["runtime"], e.label)):
        s = e.summary
        lat, t90 = s["latency_ms"], s["teacher_latency_ms"].get("p90")
        speed = f"{t90 / lat['p90']:.1f}×" if t90 and lat.get("p90") else "n/a"
        teacher_p90 = "n/a (no runtime artifact)" if s.get("teacher_no_runtime_artifact") else _ms(t90)
        lines.append(f"| {_md(e.label)} | {s['runtime']} | {_ms(lat.get('p50'))} | {_ms(lat.get('p90'))} | "
                     f"{_ms(lat.get('p99'))} | {s['budgets']['latency_p90_ms']:.2f} | {teacher_p90} | {speed} |")
    choices = [(e, *_choice_rows(e)) for e in entries]
    if any(sel is not None for _, sel, _, _ in choices):
        lines += ["", "## Shipped artifact", "",
                  "Every artifact the quantize stage built, measured side by side in the target runtime "
                  "(profile key `quantization.ship`; the latency that decides is the host's unless "
                  "`quantization.ship_latency` makes it the emulated ARM core's estimate)."]
        for e, sel, headers, rows in choices:
            if sel is None:
                continue
            lines += ["", f"### {_md(e.label)}: ships {_md(str(sel.get('shipped')))}", "",
                      f"policy `{sel.get('policy')}`: {_md(str(sel.get('reason')))}", "",
                      "| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 3) + "---|---|"]
            lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    searches = [(e, _sizing_of(e)) for e in entries]
    if any(sz is not None for _, sz in searches):
        lines += ["", "## Student size search", "",
                  "Every student size the distill stage tried: exported for real (bytes) and trained (validation "
                  "metric); recipe key `[student] objective`."]
        for e, sz in searches:
            if sz is None:
                continue
            lines += ["", f"### {_md(e.label)}: {_md(str(sz.get('knob')))}={_md(str(sz.get('value')))}", "",
                      _md(_sizing_note(sz)), "", "| " + " | ".join(_SIZING_HEADERS) + " |",
                      "|---|---:|---:|---:|---:|---|"]
            lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in _sizing_rows(sz)]
    lines += ["", "## Where the bytes go", ""]
    for e in entries:
        bd = e.gate.breakdown
        lines += [f"### {e.label}", "", f"{format_bytes(bd.get('total_bytes', 0))} bundle, "
                  f"{bd.get('tensor_count', 0)} tensors", "", "| what | size | share | |", "|---|---:|---:|---|"]
        for item, (name, size, share, detail) in zip(bd.get("items", []), breakdown_rows(e.gate)):
            bar = "█" * max(0, round(item["share"] * 20))
            label = f"`{_md(name)}`" if item["kind"] == "tensor" else _md(name)
            lines.append(f"| {label} {('<sub>' + detail + '</sub>') if detail else ''} | {size} | {share} | "
                         f"{bar or '·'} |")
        lines.append("")
    lines += ["## Gate", ""]
    for e in entries:
        lines += markdown_section(e.gate, "###")
    return "\n".join(lines).rstrip() + "\n"


def write_report(builds: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                 title: str = "edge-kd build report") -> dict[str, Path]:
    """Write ``report.md`` and a self-contained ``report.html`` comparing ``builds`` into ``out``.

    Every file is written atomically; an ``out`` holding other people's files is refused. Returns
    ``{"markdown": path, "html": path}``.

    >>> write_report(["builds/xnnpack", "builds/ort"], "reports/")     # doctest: +SKIP
    {'markdown': PosixPath('reports/report.md'), 'html': PosixPath('reports/report.html')}
    """
    out = Path(out)
    check_out_dir(out)
    entries = collect(builds)
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    html_text = render_html(entries, title, generated)
    md_text = render_markdown(entries, title, generated)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "report.md", "html": out / "report.html"}
    write_output(paths["markdown"], md_text)
    write_output(paths["html"], html_text)
    return paths
