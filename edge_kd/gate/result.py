"""What the gate decided: one :class:`Check` per rule, gathered in a :class:`GateReport`.

The report renders itself for the three audiences of a release: scripts (JSON), CI test views
(JUnit XML) and people reading a pull request (Markdown). The renderers live in
``edge_kd.gate.formats``; these classes only hold the facts.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from edge_kd.units import format_bytes

#: Version of the JSON document ``GateReport.to_dict`` produces (bumped on incompatible changes).
REPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Check:
    """One rule of the gate.

    ``value`` is what the build measured, ``limit`` the bound it must respect (``comparator`` says
    which side passes), both in ``unit``: ``bytes``, ``ms``, ``fraction`` (0.05 = 5%), ``points``
    (0.01 = 1pt of the task metric), the task metric's name, or a counted noun (``violations``,
    ``bad files``, ``failed stages``). ``reason`` is one
    sentence a person can act on, for passes as well as failures.
    """

    name: str
    title: str
    passed: bool
    value: float | int | str | None
    limit: float | int | str | None
    reason: str
    unit: str = ""
    comparator: str = "<="

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "passed": self.passed, "value": _json_number(self.value),
                "limit": _json_number(self.limit), "comparator": self.comparator, "unit": self.unit,
                "reason": self.reason, "value_text": self.value_text, "limit_text": self.limit_text}

    @property
    def value_text(self) -> str:
        return format_value(self.value, self.unit)

    @property
    def limit_text(self) -> str:
        if self.limit is None:
            return "n/a"
        return f"{_COMPARATOR_TEXT.get(self.comparator, self.comparator)} {format_value(self.limit, self.unit)}"


_COMPARATOR_TEXT = {"<=": "≤", ">=": "≥", "==": "="}


def _json_number(v: Any) -> Any:
    # JSON has no NaN/Infinity; a non-finite figure is reported as text rather than breaking parsers.
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def format_value(value: Any, unit: str) -> str:
    """Human text for a figure in its unit: ``format_value(1536, "bytes") == "1.50 KiB"``."""
    if value is None:
        return "missing"
    if isinstance(value, str):
        return value
    if unit == "bytes":
        return format_bytes(value)
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "fraction":
        return f"{value * 100:+.1f}%"
    if unit == "points":
        return f"{value * 100:.2f} pt"
    if isinstance(value, float):
        return f"{value:.4f} {unit}".rstrip()
    return f"{value} {unit}".rstrip()


@dataclass
class GateReport:
    """The gate's verdict on one build.

    >>> report = edge_kd.gate.evaluate("builds/intent")          # doctest: +SKIP
    >>> report.passed, [c.name for c in report.failed]           # doctest: +SKIP
    (False, ['latency.p90'])
    >>> Path("gate.xml").write_text(report.to_junit())           # doctest: +SKIP
    """

    passed: bool
    checks: list[Check]
    build: str
    target: str
    target_source: str = "manifest"
    baseline: str | None = None
    tolerances: dict[str, str] | None = None
    bundle: list[dict[str, Any]] = field(default_factory=list)
    breakdown: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def check(self, name: str) -> Check:
        """The check called ``name`` (KeyError when the gate did not run it)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; ran: {', '.join(c.name for c in self.checks)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "build": self.build,
            "target": self.target,
            "target_source": self.target_source,
            "baseline": self.baseline,
            "tolerances": self.tolerances,
            "passed": self.passed,
            "checks_total": len(self.checks),
            "checks_failed": len(self.failed),
            "checks": [c.to_dict() for c in self.checks],
            "summary": self.summary,
            "bundle": self.bundle,
            "breakdown": self.breakdown,
            "seconds": round(self.seconds, 6),
        }

    def to_json(self) -> str:
        """A JSON document for scripts: ``{"schema_version", "passed", "builds": [this report]}``."""
        from edge_kd.gate.formats import reports_to_json

        return reports_to_json([self])

    def to_junit(self) -> str:
        """JUnit XML: one testsuite for this build, one testcase per check, ``<failure>`` on failures."""
        from edge_kd.gate.formats import reports_to_junit

        return reports_to_junit([self])

    def to_markdown(self) -> str:
        """Markdown for a pull-request comment: a ✅/❌ table, and where the bytes go when over budget."""
        from edge_kd.gate.formats import reports_to_markdown

        return reports_to_markdown([self])


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
