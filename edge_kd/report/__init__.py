"""Build reports for people: size vs accuracy across targets and variants (with the Pareto front),
latency percentiles per runtime, where the bytes go, and the gate table, as Markdown and a
self-contained HTML page.

>>> from edge_kd.report import write_report
>>> write_report(["builds/xnnpack", "builds/ort"], "reports/")   # doctest: +SKIP

Light: imports no torch or runtime.
"""
from edge_kd.report.render import REPORT_FILES, ReportEntry, collect, render_html, render_markdown, write_report

__all__ = ["REPORT_FILES", "ReportEntry", "collect", "render_html", "render_markdown", "write_report"]
