"""benchmarks/build.py renders every kind of row it writes (classification, forecasting, next-purchase).

The script writes build.json before build.md: a renderer that fails on one kind of row loses the
markdown of a whole (long) run, as a forecasting table without its return value once did."""
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _row(example: str, target: str, **extra) -> dict:
    row = {"example": example, "target": target, "metric": "accuracy", "teacher_metric": 0.9, "student_metric": 0.88,
           "metric_kept": 0.978, "teacher_bytes": 4_000_000, "teacher_gzip_bytes": 3_600_000,
           "student_bundle_bytes": 40_000, "student_bundle_gzip_bytes": 30_000, "size_ratio": 100.0,
           "teacher_p50_ms": 1.0, "teacher_p90_ms": 1.2, "student_p50_ms": 0.01, "student_p90_ms": 0.012,
           "speedup_p50": 100.0, "gate_passed": True, "failed_checks": []}
    row.update(extra)
    return row


def test_markdown_has_a_forecasting_section_and_every_row(benchmark_script):
    build = benchmark_script("build")
    forecast = _row("demand_online_retail", "ort-mobile", metric="wape", teacher_metric=0.5275,
                    student_metric=0.5255, higher_is_better=False, teacher_mae=10.0, student_mae=9.9,
                    baselines={"seasonal_naive": {"wape": 0.6602, "mae": 12.5}},
                    raw_targets={"distilled_test_pytorch": 0.5255, "raw_test_pytorch": 0.5293},
                    gate_passed=False, failed_checks=["metric.drop"])
    text = build._markdown([_row("intent_bitext", "ort-mobile"), forecast], ["intent_bitext: built in 1 s"])
    assert "## Demand forecasting" in text
    forecast_line = next(line for line in text.splitlines()
                         if line.startswith("| demand_online_retail | ort-mobile | 0.5275"))
    assert "20.4% lower" in forecast_line and "FAIL: metric.drop" in forecast_line
    assert "| intent_bitext | ort-mobile | accuracy |" in text and "- intent_bitext: built in 1 s" in text


def test_markdown_renders_the_committed_results(benchmark_script):
    """The committed results file (whatever examples it holds) renders without error."""
    build = benchmark_script("build")
    data = json.loads((REPO / "benchmarks" / "results" / "build.json").read_text(encoding="utf-8"))
    text = build._markdown(data["rows"], data["notes"])
    for row in data["rows"]:
        assert f"| {row['example']} | {row['target']} |" in text
