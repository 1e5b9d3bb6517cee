"""Demand forecasting end to end from the CLI: the bundled Online Retail slice, a LightGBM teacher
(no runtime artifact), an MLP student distilled on its forecasts, built for all three targets.

Checks what a forecasting user relies on: WAPE/MAE measured through each runtime and gated as
lower-is-better, the teacher measured in Python with no latency, the seasonal-naive baseline and the
raw-target student recorded beside the distilled one, bundles whose golden vectors replay, and bad
input (no date column, a horizon longer than the history) exiting 2 with one line before training.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SLICE = REPO / "examples" / "data" / "online-retail" / "forecast_slice.csv"
TARGETS = ["android-arm64-xnnpack", "ort-mobile", "tflite-int8"]

RECIPE = """
name = "tiny-demand"
[teacher]
name = "lightgbm"
options = { n_estimators = 40, num_leaves = 7, min_child_samples = 5, early_stopping_rounds = 20 }
[data]
train = "transactions:sales.csv?task=forecast&horizon=1&val_weeks=2&test_weeks=2"
[student]
family = "forecast_mlp"
max_params = 1500
[distill]
losses = ["regression_kd"]
alpha = 0.8
epochs = 12
batch_size = 16
lr = 0.003
options = { compare_raw_targets = true }
[quantize]
calibration_samples = 32
method = "minmax"
eval_samples = 6
[bench]
metric = "wape"
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "EDGE_KD_CACHE": str(cwd / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "edge_kd", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=2400)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("forecast")
    shutil.copy(SLICE, work / "sales.csv")
    (work / "recipe.toml").write_text(RECIPE)
    args = ["build", "recipe.toml", "--out", "out", "--json", "summary.json"]
    for t in TARGETS:
        args += ["--target", t]
    result = _cli(*args, cwd=work)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return work, result


def test_forecast_manifest_per_target(built):
    from edge_kd.metrics import wape

    work, result = built
    for target in TARGETS:
        m = json.loads((work / "out" / target / "build.json").read_text())
        assert m["metrics"]["task_metric"]["name"] == "wape"
        assert m["metrics"]["wape"] == m["metrics"]["task_metric"]["value"] and m["metrics"]["mae"] > 0
        assert m["metrics"]["eval_rows"] == 10
        # The trees have no runtime artifact: measured in Python, no latency, said so.
        teacher = m["teacher"]
        assert teacher["name"] == "lightgbm" and teacher["artifact"] is None
        assert "no runtime artifact" in teacher["no_runtime_artifact"] and "latency_ms" not in teacher
        assert teacher["measured_in"].startswith("python (lightgbm")
        naive = m["metrics"]["baselines"]["seasonal_naive"]
        assert naive["wape"] > 0 and "1 week(s) earlier" in naive["definition"]
        distill = next(s for s in m["stages"] if s["name"] == "distill")["details"]
        assert distill["metric"] == "wape" and distill["raw_targets"]["test_metric_pytorch"] > 0
        check = {c["name"]: c for c in m["gate"]["checks"]}["accuracy.drop"]
        assert check["comparator"] == "<=" and check["limit"] >= teacher["task_metric"]["value"]
        quant = next(s for s in m["stages"] if s["name"] == "quantize")["details"]
        assert quant["accuracy"]["metric"] == "wape" and quant["accuracy"]["higher_is_better"] is False
        assert quant["accuracy"]["eval_samples"] == 6  # [quantize] eval_samples: validation rows judged
        assert quant["selection"]["budgets"]["higher_is_better"] is False
    summary = json.loads((work / "summary.json").read_text())
    assert [row["target"] for row in summary] == TARGETS
    assert result.returncode == (0 if all(row["gate_passed"] for row in summary) else 1)
    assert "wape" in result.stdout


def test_every_forecast_artifact_runs_and_its_bundle_replays(built):
    from edge_kd.bundle import verify_bundle
    from edge_kd.runtimes import open_runner

    work, _ = built
    for target in TARGETS:
        root = work / "out" / target
        m = json.loads((root / "build.json").read_text())
        (model,) = [a for a in m["artifacts"] if a["role"] == "model"]
        runner = open_runner(root / model["path"])
        assert len(runner.input_specs) == 2
        inputs = [np.zeros(shape, dtype) for _, shape, dtype in runner.input_specs]
        inputs[1][...] = 10.0  # level: 10 units a week
        (out,) = runner.run(inputs)[:1]
        assert out.shape[-1] == 1 and np.isfinite(out).all()
        asset = json.loads((root / "bundle" / "preprocess.json").read_text())
        assert asset["format"] == "edge_kd.forecast" and len(asset["features"]) == len(asset["means"])
        result = verify_bundle(root)
        assert result.ok, result.all_problems


def test_gate_and_report_from_the_cli(built):
    work, _ = built
    builds = [str(Path("out") / t) for t in TARGETS]
    gate = _cli("gate", *builds, "--json", "gate.json", cwd=work)
    assert gate.returncode in (0, 1), gate.stderr
    report = _cli("report", *builds, "--out", "rep", cwd=work)
    assert report.returncode == 0, report.stderr
    text = (work / "rep" / "report.md").read_text()
    assert "lower is better" in text and "n/a (no runtime artifact)" in text


def test_bad_forecast_input_fails_before_training(tmp_path):
    header, *lines = SLICE.read_text().splitlines()
    no_date = ",".join(c for c in header.split(",") if c != "InvoiceDate")
    (tmp_path / "nodate.csv").write_text(no_date + "\n")
    shutil.copy(SLICE, tmp_path / "sales.csv")
    cases = {
        "no date column": (RECIPE.replace("sales.csv", "nodate.csv"), "no date column 'InvoiceDate'"),
        "horizon longer than the history": (RECIPE.replace("horizon=1", "horizon=30"), "not shorter than the history"),
        "too few weeks": (RECIPE.replace("test_weeks=2", "test_weeks=8"), "too few"),
        "classification loss": (RECIPE.replace('losses = ["regression_kd"]', 'losses = ["hinton"]'), "hinton"),
    }
    for case, (recipe, words) in cases.items():
        (tmp_path / "r.toml").write_text(recipe)
        result = _cli("build", "r.toml", "--target", "ort-mobile", "--out", f"out-{len(words)}", cwd=tmp_path)
        assert result.returncode == 2, (case, result.stderr)
        assert words in result.stderr, (case, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, (case, result.stderr)
        assert not list((tmp_path / f"out-{len(words)}").glob("*/student/*")), case
