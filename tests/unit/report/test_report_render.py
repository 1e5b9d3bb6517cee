"""``edge-kd report``: chart maths, page content, self-containment, and the --out folder rules."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from edge_kd.cli import main
from edge_kd.errors import InputError
from edge_kd.report import write_report
from edge_kd.report.svg import Point, nice_ticks, pareto_front

REPO = Path(__file__).resolve().parents[3]
SVG_NS = "{http://www.w3.org/2000/svg}"
VARIANTS = [  # name, target, width, metric, (p50, p90, p99)
    ("xnn-s", "android-arm64-xnnpack", 8, 0.874, (5.1, 5.9, 7.0)),
    ("xnn-m", "android-arm64-xnnpack", 16, 0.905, (7.9, 8.8, 10.4)),
    ("ort-m", "ort-mobile", 16, 0.903, (8.6, 9.9, 12.9)),
    ("tfl-s", "tflite-int8", 10, 0.881, (5.0, 5.6, 6.1)),
]
BUDGETS = {"artifact_size": "160KiB", "download_size": "150KiB", "latency_p90": "12ms", "accuracy_drop": "4pt"}


@pytest.fixture
def builds(make_build):
    return [make_build(name, target=t, width=w, metric=m, latency=lat, budgets=BUDGETS, seed=i)
            for i, (name, t, w, m, lat) in enumerate(VARIANTS)]


def _svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", html, flags=re.S)]


def test_nice_ticks_golden():
    assert nice_ticks(0, 97) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0.86, 0.94) == pytest.approx([0.86, 0.88, 0.90, 0.92, 0.94])
    assert nice_ticks(0, 13.2) == [0, 5, 10, 15]
    assert nice_ticks(0, 11.0) == [0, 2.5, 5, 7.5, 10, 12.5]
    assert nice_ticks(5, 5) == pytest.approx([4.4, 4.6, 4.8, 5.0, 5.2, 5.4, 5.6])


def test_pareto_front_golden():
    pts = [Point(10, 0.80, "a", ""), Point(20, 0.79, "b", ""), Point(20, 0.85, "c", ""), Point(30, 0.85, "d", ""),
           Point(40, 0.90, "e", ""), Point(5, 0.70, "f", "")]
    assert [p.label for p in pareto_front(pts)] == ["f", "a", "c", "e"]


def test_report_files_and_content(builds, tmp_path):
    out = tmp_path / "report"
    paths = write_report(builds, out)
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md"]
    html = paths["html"].read_text()
    svgs = _svgs(html)
    # one scatter (one metric), one latency chart, one per-layer chart per build
    assert len(svgs) == 2 + len(builds)
    scatter = svgs[0]
    assert len(scatter.findall(f".//{SVG_NS}circle[@class='point']")) == len(builds)
    assert scatter.find(f".//{SVG_NS}path[@class='pareto']") is not None
    labels = {t.text for t in scatter.iter(f"{SVG_NS}text")}
    assert {"xnn-s", "xnn-m", "ort-m", "tfl-s", "teacher (fp32) 0.9180"} <= labels
    latency = svgs[1]
    assert len(latency.findall(f".//{SVG_NS}rect[@class='bar']")) == 3 * len(builds)
    assert len(latency.findall(f".//{SVG_NS}line[@class='budget']")) == len(builds)
    layers = svgs[2]
    assert len(layers.findall(f".//{SVG_NS}rect[@class='bar']")) == 12 + 3  # 12 tensors, rest, overhead, labels
    assert html.count('class="gate"') == len(builds)


def test_html_is_self_contained(builds, tmp_path):
    html = write_report(builds, tmp_path / "r")["html"].read_text()
    assert "<script" not in html.lower()
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}
    assert "@import" not in html and "url(" not in html


def test_markdown_report(builds, tmp_path):
    md = write_report(builds, tmp_path / "r")["markdown"].read_text()
    assert md.startswith("# edge-kd build report")
    assert "| xnn-m | android-arm64-xnnpack | executorch .pte |" in md
    front = next(line for line in md.splitlines() if line.startswith("- **accuracy**"))
    assert [re.match(r"\s*(\S+)", part).group(1) for part in front.split(": ", 1)[1].split(" → ")] == \
        ["xnn-s", "tfl-s", "xnn-m"]
    assert "### ✅ `" in md and "## Where the bytes go" in md


def test_hostile_names_are_escaped(make_build, tmp_path):
    build = make_build('a<b>&"c\'', budgets=BUDGETS, violations=["<svg onload=x>"], target="tflite-int8")
    paths = write_report([build], tmp_path / "r")
    html = paths["html"].read_text()
    assert len(_svgs(html)) == 3  # every SVG still parses as XML
    assert "<b>&" not in html and "<svg onload" not in html
    assert "a&lt;b&gt;&amp;&quot;c&#x27;" in html


def test_two_metrics_two_scatters(make_build, tmp_path):
    a = make_build("img", budgets=BUDGETS)
    b = make_build("txt", metric_name="f1", metric=0.81, teacher_metric=0.83, budgets=BUDGETS)
    html = write_report([a, b], tmp_path / "r")["html"].read_text()
    titles = [t.text for s in _svgs(html) for t in s.iter(f"{SVG_NS}text") if t.text and t.text.startswith("Bundle")]
    assert titles == ["Bundle size vs accuracy", "Bundle size vs f1"]


def test_build_with_missing_figures_still_reports(make_build, fx, tmp_path):
    a = make_build("ok", budgets=BUDGETS)
    b = make_build("broken", budgets=BUDGETS)
    fx.edit_manifest(b, lambda m: (m["metrics"].pop("latency_ms"), m["metrics"].pop("task_metric")))
    paths = write_report([a, b], tmp_path / "r")
    html = paths["html"].read_text()
    assert len(_svgs(html)[0].findall(f".//{SVG_NS}circle[@class='point']")) == 1
    assert "not recorded" in html and "missing" in paths["markdown"].read_text()


def test_out_folder_rules(builds, tmp_path):
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="refusing"):
        write_report(builds, foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        write_report(builds, a_file)
    # An earlier report is replaced; files beside it are left alone.
    ours = tmp_path / "ours"
    write_report(builds[:1], ours)
    (ours / "README.txt").write_text("keep")
    write_report(builds, ours)
    assert sorted(p.name for p in ours.iterdir()) == ["README.txt", "report.html", "report.md"]
    assert "tfl-s" in (ours / "report.md").read_text()


def test_bad_build_writes_nothing(builds, tmp_path, fx):
    fx.edit_manifest(builds[1], lambda m: m.update(schema_version=7))
    with pytest.raises(InputError, match="schema_version 7"):
        write_report(builds, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_cli_exit_codes(builds, tmp_path, capsys):
    assert main(["report", *map(str, builds), "--out", str(tmp_path / "r")]) == 0
    assert "report.html" in capsys.readouterr().out
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "x").write_text("x")
    assert main(["report", str(builds[0]), "--out", str(foreign)]) == 2
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert err.count("edge-kd: error:") == 2 and "Traceback" not in err


def test_report_imports_nothing_heavy(builds, tmp_path):
    code = (
        "import json, sys\n"
        "from edge_kd.cli import main\n"
        f"rc = main(['report', {str(builds[0])!r}, '--out', {str(tmp_path / 'r')!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'executorch', 'onnxruntime', "
        "'ai_edge_litert', 'litert_torch', 'tensorflow', 'matplotlib'))\n"
        "print(json.dumps({'rc': rc, 'heavy': heavy}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"rc": 0, "heavy": []}


def test_report_shows_the_shipped_artifact_decision(builds, tmp_path, fx):
    def mutate(m):
        stage = next(s for s in m["stages"] if s["name"] == "quantize")
        stage["details"] = {"selection": {
            "policy": "fastest-within-budget", "shipped": "fp32", "noise_margin": 0.05,
            "reason": "fastest artifact that meets every budget (p50 0.017 ms)",
            "candidates": [
                {"name": "fp32", "shipped": True, "bytes": 60000, "metric": 0.9, "p50_ms": 0.017,
                 "rounds_ms": [0.017] * 4, "within_budget": True, "reason": "shipped: fastest"},
                {"name": "int8", "shipped": False, "bytes": 20000, "metric": 0.9, "p50_ms": 0.09,
                 "rounds_ms": [0.09] * 4, "within_budget": True, "reason": "slower: p50 0.09 ms vs 0.017 ms (5.29x)"}]}}
    fx.edit_manifest(builds[0], mutate)
    paths = write_report(builds, tmp_path / "r")
    md, html = paths["markdown"].read_text(), paths["html"].read_text()
    assert "## Shipped artifact" in md and "### xnn-s: ships fp32" in md
    assert "| ▶ fp32 | 58.59 KiB | 0.9000 | 0.017 | yes | shipped: fastest |" in md
    assert "slower: p50 0.09 ms vs 0.017 ms (5.29x)" in md and md.count(": ships ") == 1
    assert "<h2>Shipped artifact</h2>" in html and 'class="choice"' in html
    # builds without a recorded choice have no section at all
    assert "Shipped artifact" not in write_report(builds[1:], tmp_path / "r2")["markdown"].read_text()


def test_an_emulated_choice_shows_the_host_p50_beside_the_deciding_arm_estimate(builds, tmp_path, fx):
    def mutate(m):
        stage = next(s for s in m["stages"] if s["name"] == "quantize")
        stage["details"] = {"selection": {
            "policy": "fastest-within-budget", "shipped": "int8", "noise_margin": 0.05,
            "latency": {"source": "emulated", "core": "cortex-a76"},
            "reason": "fastest artifact that meets every budget (cortex-a76 estimate 0.02 ms)",
            "candidates": [
                {"name": "int8", "shipped": True, "bytes": 20000, "metric": 0.9, "p50_ms": 0.02, "rounds_ms": [0.02],
                 "host_p50_ms": 0.09, "arm": {"core": "cortex-a76", "instructions": 48000, "estimate_ms": 0.02},
                 "within_budget": True, "reason": "shipped: fastest"},
                {"name": "fp32", "shipped": False, "bytes": 60000, "metric": 0.9, "p50_ms": 0.04, "rounds_ms": [0.04],
                 "host_p50_ms": 0.017, "arm": {"core": "cortex-a76", "instructions": 96000, "estimate_ms": 0.04},
                 "within_budget": True, "reason": "slower: cortex-a76 estimate 0.04 ms vs 0.02 ms (2.00x)"}]}}
    fx.edit_manifest(builds[0], mutate)
    paths = write_report(builds, tmp_path / "r")
    md, html = paths["markdown"].read_text(), paths["html"].read_text()
    assert "| candidate | bytes | metric | host p50 ms | cortex-a76 est. ms (decides) | within budget | decision |" in md
    assert "|---|---:|---:|---:|---:|---|---|" in md
    assert "| ▶ int8 | 19.53 KiB | 0.9000 | 0.09 | 0.02 | yes | shipped: fastest |" in md
    assert "<th>cortex-a76 est. ms (decides)</th>" in html and '<td class="num">0.017</td>' in html


def test_report_shows_the_student_size_search(builds, tmp_path, fx):
    def mutate(m):
        stage = next(s for s in m["stages"] if s["name"] == "distill")
        stage.setdefault("details", {})["sizing"] = {
            "objective": "smallest-within-drop", "knob": "buckets", "value": 2048, "budget_bytes": 4 * 1024 ** 2,
            "teacher_val_metric": 0.95, "min_allowed_val_metric": 0.94, "accuracy_drop": "1pt", "within_drop": True,
            "candidates": [
                {"value": 65536, "params": 1_700_000, "bytes": 1_800_000, "gzip_bytes": 1_500_000,
                 "bundle_bytes": 1_801_000, "bundle_gzip_bytes": 1_501_000, "val_metric": 0.96, "within_drop": True},
                {"value": 1024, "params": 30_000, "bytes": 40_000, "gzip_bytes": 30_000, "bundle_bytes": 41_000,
                 "bundle_gzip_bytes": 31_000, "val_metric": 0.91, "within_drop": False},
                {"value": 2048, "params": 60_000, "bytes": 70_000, "gzip_bytes": 50_000, "bundle_bytes": 71_000,
                 "bundle_gzip_bytes": 51_000, "val_metric": 0.945, "within_drop": True}]}
    fx.edit_manifest(builds[0], mutate)
    paths = write_report(builds, tmp_path / "r")
    md, html = paths["markdown"].read_text(), paths["html"].read_text()
    assert "## Student size search" in md and "### xnn-s: buckets=2048" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "buckets=" in line]
    assert rows == ["| buckets=1024 | 30,000 | 40.04 KiB | 30.27 KiB | 0.9100 | no |",
                    "| ▶ buckets=2048 | 60,000 | 69.34 KiB | 49.80 KiB | 0.9450 | yes |",
                    "| buckets=65536 | 1,700,000 | 1.72 MiB | 1.43 MiB | 0.9600 | yes |"]
    assert "within 1pt of the teacher's (0.9500, so >= 0.9400)" in md
    assert "<h2>Student size search</h2>" in html and 'id="sizing-0"' in html and "allowed floor 0.9400" in html
    # a build that filled the budget (no candidates recorded) has no section
    assert "Student size search" not in write_report(builds[1:], tmp_path / "r2")["markdown"].read_text()
