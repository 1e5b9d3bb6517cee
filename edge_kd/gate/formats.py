"""Renderers of gate reports: JSON for scripts, JUnit XML for CI test views, Markdown for a pull
request comment, and a plain console table. Each takes a list of reports (one per build) so that a
release of several models renders as one document.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from edge_kd.gate.bundle import short_name
from edge_kd.gate.result import REPORT_SCHEMA_VERSION, Check, GateReport, dumps
from edge_kd.units import format_bytes

#: Hidden marker at the top of the Markdown, so a CI step can find and update its earlier comment.
MARKDOWN_MARKER = "<!-- edge-kd-gate -->"
_SIZE_CHECKS = ("bundle.size", "bundle.download_size", "baseline.size_growth")


def write_output(path: str | os.PathLike[str], text: str) -> Path:
    """Write a report file atomically, readable as the user's umask allows (like any file they create)."""
    from edge_kd.pipeline.atomic import atomic_write_text

    path = Path(path)
    atomic_write_text(path, text)
    # The temp file behind the atomic rename is created 0600; a report is meant to be shared.
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
    return path


def reports_to_dict(reports: Sequence[GateReport]) -> dict[str, Any]:
    return {"schema_version": REPORT_SCHEMA_VERSION, "tool": "edge-kd gate",
            "passed": all(r.passed for r in reports), "builds": [r.to_dict() for r in reports]}


def reports_to_json(reports: Sequence[GateReport]) -> str:
    """``{"schema_version", "tool", "passed", "builds": [...]}`` as indented JSON (never NaN).

    >>> json.loads(reports_to_json([evaluate("build")]))["passed"]     # doctest: +SKIP
    True
    """
    return dumps(reports_to_dict(reports))


# ---- JUnit ----------------------------------------------------------------------------------------
def _junit_class(report: GateReport) -> str:
    return "edge_kd.gate." + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in report.target)


def reports_to_junit(reports: Sequence[GateReport]) -> str:
    """JUnit XML as Jenkins, GitLab, GitHub test reporters and Azure read it: ``<testsuites>`` with
    one ``<testsuite>`` per build and one ``<testcase>`` per check; a failed check carries a
    ``<failure message=...>`` with its value, limit and reason.

    >>> Path("gate.xml").write_text(reports_to_junit([evaluate(b) for b in builds]))   # doctest: +SKIP
    """
    import xml.etree.ElementTree as ET  # only when JUnit is asked for: keeps the plain gate's start light
    total = sum(len(r.checks) for r in reports)
    failures = sum(len(r.failed) for r in reports)
    root = ET.Element("testsuites", name="edge-kd gate", tests=str(total), failures=str(failures), errors="0",
                      time=f"{sum(r.seconds for r in reports):.6f}")
    for report in reports:
        suite = ET.SubElement(root, "testsuite", name=f"edge-kd gate: {report.build} ({report.target})",
                              tests=str(len(report.checks)), failures=str(len(report.failed)), errors="0",
                              skipped="0", time=f"{report.seconds:.6f}")
        props = ET.SubElement(suite, "properties")
        for key, value in (("build", report.build), ("target", report.target),
                           ("target_source", report.target_source), ("baseline", report.baseline or "")):
            ET.SubElement(props, "property", name=key, value=value)
        per_check = report.seconds / max(1, len(report.checks))
        for check in report.checks:
            case = ET.SubElement(suite, "testcase", classname=_junit_class(report), name=check.name,
                                 time=f"{per_check:.6f}")
            text = f"{check.title}: {check.value_text} (limit {check.limit_text}). {check.reason}"
            if check.passed:
                ET.SubElement(case, "system-out").text = text
            else:
                failure = ET.SubElement(case, "failure", message=f"{check.title}: {check.reason}",
                                        type="BudgetCheckFailed")
                failure.text = text
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---- Markdown -------------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _bar(share: float, width: int = 20) -> str:
    full = share * width
    n = int(full)
    return "█" * n + ("▌" if full - n >= 0.5 else "")


def breakdown_rows(report: GateReport) -> list[tuple[str, str, str, str]]:
    """(what, size, share, detail) rows of where the bundle's bytes go, largest first."""
    rows = []
    for item in report.breakdown.get("items", []):
        detail = ""
        if item["kind"] == "tensor":
            shape = "×".join(str(d) for d in item["shape"]) if item.get("shape") else ""
            detail = " ".join(x for x in (item.get("dtype") or "", shape) if x)
        name = short_name(item["name"]) if item["kind"] == "tensor" else item["name"]
        rows.append((name, format_bytes(item["bytes"]), f"{item['share'] * 100:.1f}%", detail))
    return rows


def _over_size_budget(report: GateReport) -> bool:
    return any(not c.passed and c.name in _SIZE_CHECKS for c in report.checks)


def _markdown_breakdown(report: GateReport) -> list[str]:
    bd = report.breakdown
    lines = [f"**Where the bytes go** ({format_bytes(bd.get('total_bytes', 0))} bundle"
             + (f", {bd.get('tensor_count')} tensors)" if bd.get("tensors_recorded") else
                "; no per-tensor sizes recorded)"), "",
             "| What | Size | Share | |", "|---|---:|---:|---|"]
    for item, (name, size, share, detail) in zip(bd.get("items", []), breakdown_rows(report)):
        label = f"`{_md_escape(name)}`" if item["kind"] == "tensor" else _md_escape(name)
        if detail:
            label += f" <sub>{_md_escape(detail)}</sub>"
        lines.append(f"| {label} | {size} | {share} | `{_bar(item['share']) or '·'}` |")
    return lines


def markdown_section(report: GateReport, heading: str = "###") -> list[str]:
    """The Markdown lines of one build: verdict heading, check table, where the bytes go."""
    icon = "✅" if report.passed else "❌"
    verdict = "passed" if report.passed else f"failed ({len(report.failed)} of {len(report.checks)} checks)"
    lines = [f"{heading} {icon} `{_md_escape(report.build)}` → {report.target}: {verdict}", ""]
    src = "budgets recorded in the build" if report.target_source == "manifest" else \
        f"budgets from `{_md_escape(report.target_source)}`"
    base = f"; baseline `{_md_escape(report.baseline)}`" if report.baseline else ""
    lines += [f"<sub>{src}{base}</sub>", "", "| | Check | Value | Limit | Details |", "|:-:|---|---:|---:|---|"]
    for c in report.checks:
        lines.append(f"| {'✅' if c.passed else '❌'} | {_md_escape(c.title)} | {_md_escape(c.value_text)} | "
                     f"{_md_escape(c.limit_text)} | {_md_escape(c.reason)} |")
    lines.append("")
    if _over_size_budget(report):
        lines += _markdown_breakdown(report) + [""]
    elif report.breakdown.get("items"):
        lines += ["<details><summary>Where the bytes go</summary>", ""] + _markdown_breakdown(report) + \
                 ["", "</details>", ""]
    return lines


def reports_to_markdown(reports: Sequence[GateReport]) -> str:
    """Markdown for a PR comment: a verdict line, then per build a ✅/❌ table with value vs limit in
    units, and "where the bytes go" (expanded when a size budget broke, folded otherwise).

    >>> Path("gate.md").write_text(reports_to_markdown([evaluate("build")]))          # doctest: +SKIP
    """
    passed = all(r.passed for r in reports)
    n_failed = sum(1 for r in reports if not r.passed)
    lines = [MARKDOWN_MARKER]
    if len(reports) == 1:
        lines += markdown_section(reports[0], "###")
    else:
        verdict = "all builds passed" if passed else f"{n_failed} of {len(reports)} builds failed"
        lines += [f"### {'✅' if passed else '❌'} edge-kd release gate: {verdict}", ""]
        for r in reports:
            lines += markdown_section(r, "####")
    lines.append("<sub>edge-kd gate · exit 0 pass, 1 a check failed, 2 bad input</sub>")
    return "\n".join(lines) + "\n"


# ---- console --------------------------------------------------------------------------------------
def _table(rows: Sequence[Sequence[str]], headers: Sequence[str], indent: str = "  ") -> list[str]:
    cells = [list(headers)] + [list(r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for n, row in enumerate(cells):
        out.append(indent + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            out.append(indent + "  ".join("-" * w for w in widths))
    return out


def _console_check_row(c: Check) -> list[str]:
    return ["PASS" if c.passed else "FAIL", c.name, c.value_text, c.limit_text, c.reason]


def reports_to_console(reports: Sequence[GateReport]) -> str:
    """A readable plain-text table per build (PASS/FAIL words, so any CI log shows the verdict).

    >>> print(reports_to_console([evaluate("build")]))                                # doctest: +SKIP
    """
    lines: list[str] = []
    for r in reports:
        base = f", baseline {r.baseline}" if r.baseline else ""
        src = "" if r.target_source == "manifest" else f" from {r.target_source}"
        lines.append(f"{r.build}  (target {r.target}{src}{base})")
        lines += _table([_console_check_row(c) for c in r.checks], ["status", "check", "value", "limit", "reason"])
        if _over_size_budget(r) and r.breakdown.get("items"):
            lines += ["", "  where the bytes go:"]
            lines += _table([list(row) for row in breakdown_rows(r)], ["what", "size", "share", "dtype/shape"],
                            indent="    ")
        lines.append("")
    failed = [r for r in reports if not r.passed]
    if failed:
        names = "; ".join(f"{r.build}: {', '.join(c.name for c in r.failed)}" for r in failed)
        lines.append(f"gate FAILED ({len(failed)} of {len(reports)} build(s)): {names}")
    else:
        n = sum(len(r.checks) for r in reports)
        lines.append(f"gate PASSED ({len(reports)} build(s), {n} checks)")
    return "\n".join(lines) + "\n"
