"""The release gate: recorded measurements of a build vs the budgets of its target profile.

>>> import edge_kd.gate
>>> report = edge_kd.gate.evaluate("builds/intent", baseline="release/build.json")  # doctest: +SKIP
>>> report.passed                                                                  # doctest: +SKIP
True
>>> open("gate.xml", "w").write(report.to_junit())                                 # doctest: +SKIP

Light: imports no torch or runtime (CI jobs run the gate without them). Documented in docs/gate.md.
"""
from edge_kd.gate.bundle import bytes_breakdown
from edge_kd.pipeline.records import BUNDLE_ROLES
from edge_kd.gate.evaluate import evaluate, load_build
from edge_kd.gate.formats import (reports_to_console, reports_to_dict, reports_to_json, reports_to_junit,
                                  reports_to_markdown)
from edge_kd.gate.result import Check, GateReport, format_value
from edge_kd.gate.tolerances import Tolerance, Tolerances

__all__ = [
    "BUNDLE_ROLES", "Check", "GateReport", "Tolerance", "Tolerances", "bytes_breakdown", "evaluate",
    "format_value", "load_build", "reports_to_console", "reports_to_dict", "reports_to_json", "reports_to_junit",
    "reports_to_markdown",
]
