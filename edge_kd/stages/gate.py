"""The gate stage: the release gate over the build's recorded figures (``edge_kd.gate.evaluate``).
"""
from __future__ import annotations

from edge_kd.pipeline import Stage


class GateStage(Stage):
    """The release gate on the recorded numbers; writes ``report.md`` beside build.json."""

    name = "gate"
    requires = ("metrics", "target")
    provides = ("gate",)

    def run(self, ctx, build, record):
        from edge_kd.gate import evaluate
        from edge_kd.pipeline import atomic_write_text

        report = evaluate(build)
        build.manifest["gate"] = report.to_dict()
        atomic_write_text(build.root / "report.md", report.to_markdown())
        record["details"] = {"passed": report.passed, "failed": [c.name for c in report.failed]}
        return {"gate": report.passed}


