"""`edge-kd build` end to end from the CLI: a tiny tabular recipe built for all three targets.

The data is generated here (a few hundred rows of a learnable purchase rule) so the test needs no
../shared. It checks the manifest fields the gate and users' CI rely on, that every artifact runs in
its runtime, that a re-run reuses the completed stages, and the bad-input contract.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TARGETS = ["android-arm64-xnnpack", "ort-mobile", "tflite-int8"]

RECIPE = """
name = "tiny-shop"
[teacher]
name = "tabular-mlp"
options = { hidden = [32, 16] }
[teacher.finetune]
epochs = 10
batch_size = 64
[data]
train = "tabular:shop.csv?label=bought&categorical=month,visitor&positive=TRUE"
[student]
family = "tabular_mlp"
max_params = 4000
[distill]
epochs = 40
batch_size = 32
lr = 0.003
[quantize]
calibration_samples = 32
method = "minmax"
[bench]
eval_samples = 60
"""


def _write_data(folder: Path, n: int = 400) -> None:
    rng = np.random.default_rng(0)
    with open(folder / "shop.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pages", "duration", "bounce", "value", "month", "visitor", "bought"])
        for _ in range(n):
            pages, dur, bounce = rng.integers(0, 40), rng.exponential(300), rng.random() * 0.2
            value = rng.exponential(5) * (rng.random() < 0.4)
            month, visitor = rng.choice(["Feb", "Mar", "Nov", "Dec"]), rng.choice(["New", "Returning"])
            score = 0.08 * value + 0.03 * pages - 10 * bounce + (0.5 if month == "Nov" else 0) + rng.normal(0, 0.5)
            w.writerow([pages, round(dur, 1), round(bounce, 3), round(value, 2), month, visitor,
                        "TRUE" if score > 1.0 else "FALSE"])


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "EDGE_KD_CACHE": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-m", "edge_kd", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=1500)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("build")
    _write_data(work)
    (work / "recipe.toml").write_text(RECIPE)
    args = ["build", "recipe.toml", "--out", "out", "--json", "summary.json"]
    for t in TARGETS:
        args += ["--target", t]
    result = _cli(*args, cwd=work)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return work, result


def test_manifest_fields_per_target(built):
    work, result = built
    for target in TARGETS:
        assert target in result.stdout
        manifest = json.loads((work / "out" / target / "build.json").read_text())
        assert manifest["schema_version"] == 1
        assert manifest["target"]["name"] == target
        assert manifest["recipe"]["name"] == "tiny-shop"
        assert manifest["tool_versions"]["torch"].startswith("2.13")
        stages = {s["name"]: s for s in manifest["stages"]}
        assert list(stages) == ["distill", "quantize", "bundle", "bench", "gate"]
        assert all(s["status"] in ("ok", "reused") and s["seconds"] is not None for s in stages.values())
        roles = {a["role"] for a in manifest["artifacts"]}
        assert "model" in roles
        for artifact in manifest["artifacts"]:
            for key in ("path", "format", "bytes", "gzip_bytes", "sha256"):
                assert key in artifact
            assert (work / "out" / target / artifact["path"]).is_file()
        metrics, teacher = manifest["metrics"], manifest["teacher"]
        for m in (metrics, teacher):
            assert m["task_metric"]["name"] == "roc_auc" and 0.5 < m["task_metric"]["value"] <= 1.0
            assert {"p50", "p90", "p99"} <= set(m["latency_ms"]) and m["latency_ms"]["p50"] > 0
            assert m["load_ms"] > 0 and "peak_rss_mb" in m
        gate = manifest["gate"]
        assert isinstance(gate["passed"], bool)
        names = {c["name"] for c in gate["checks"]}
        assert {"bundle.size", "latency.p90", "accuracy.drop", "ops.policy"} <= names
        for check in gate["checks"]:
            assert {"name", "passed", "value", "limit"} <= set(check)
        assert (work / "out" / target / "report.md").is_file()
    summary = json.loads((work / "summary.json").read_text())
    assert [row["target"] for row in summary] == TARGETS
    exit_code = 0 if all(row["gate_passed"] for row in summary) else 1
    assert result.returncode == exit_code


def test_every_artifact_runs_in_its_runtime(built):
    from edge_kd.runtimes import open_runner

    work, _ = built
    for target in TARGETS:
        manifest = json.loads((work / "out" / target / "build.json").read_text())
        (model,) = [a for a in manifest["artifacts"] if a["role"] == "model"]
        runner = open_runner(work / "out" / target / model["path"])
        inputs = [np.zeros(shape, dtype) for _, shape, dtype in runner.input_specs]
        (out,) = runner.run(inputs)[:1]
        assert out.shape[-1] == 2 and np.isfinite(out).all()


def test_every_bundle_carries_its_contract_and_replays(built):
    from edge_kd.bundle import verify_bundle

    work, _ = built
    for target in TARGETS:
        root = work / "out" / target
        manifest = json.loads((root / "build.json").read_text())
        shipped = sorted(a["path"] for a in manifest["artifacts"] if a["role"] in ("model", "preprocessing"))
        assert shipped == sorted([manifest["bundle"]["artifact"]["path"], "bundle/preprocess.json"])
        assert {c["name"]: c["passed"] for c in manifest["gate"]["checks"]}["bundle.contract"] is True
        result = verify_bundle(root)
        assert result.ok, result.all_problems
        assert result.replay.vectors == 32 and result.replay.top1_agreement == 1.0


def test_rerun_reuses_completed_stages(built):
    work, _ = built
    result = _cli("build", "recipe.toml", "--out", "out", "--target", "ort-mobile", cwd=work)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    stages = json.loads((work / "out" / "ort-mobile" / "build.json").read_text())["stages"]
    status = {s["name"]: s["status"] for s in stages}
    assert status["distill"] == "reused" and status["quantize"] == "reused" and status["bench"] == "reused"


def test_bad_input_fails_before_any_work(tmp_path):
    _write_data(tmp_path, n=50)
    (tmp_path / "recipe.toml").write_text(RECIPE)
    cases = {
        "unknown target": (["--target", "no-such-target"], "unknown target"),
        "missing data": (["--target", "ort-mobile"], "does not exist"),
        "bad label column": (["--target", "ort-mobile"], "bought_it"),
        "unknown key": (["--target", "ort-mobile"], "colour"),
        "someone else's folder": (["--target", "ort-mobile", "--out", "theirs"], "refusing"),
    }
    for case, (extra, words) in cases.items():
        recipe = RECIPE
        if case == "missing data":
            recipe = recipe.replace("shop.csv", "nowhere.csv")
        elif case == "bad label column":
            recipe = recipe.replace("label=bought", "label=bought_it")
        elif case == "unknown key":
            recipe = recipe.replace("[distill]", "[distill]\ncolour = 3")
        elif case == "someone else's folder":
            (tmp_path / "theirs").mkdir(exist_ok=True)
            (tmp_path / "theirs" / "notes.txt").write_text("mine")
        (tmp_path / "r.toml").write_text(recipe)
        result = _cli("build", "r.toml", *extra, cwd=tmp_path)
        assert result.returncode == 2, (case, result.stderr)
        assert words in result.stderr, (case, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, (case, result.stderr)
    assert (tmp_path / "theirs" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "theirs" / "ort-mobile").exists()


def _write_pruning_recipe(tmp_path, prune_keys: str) -> None:
    """The data and RECIPE with a [prune] table (``enabled``, a 0.5 MACs goal and ``prune_keys``)."""
    _write_data(tmp_path)
    (tmp_path / "recipe.toml").write_text(RECIPE.replace(
        "[quantize]", f"[prune]\nenabled = true\ngoal = \"macs\"\namount = 0.5\n{prune_keys}\n[quantize]"))


def test_build_with_pruning_stage(tmp_path):
    """[prune].enabled adds a prune stage between distill and quantize; the shipped model is the pruned one.
    Geometric step sizes: the first step keeps sqrt(0.5) of the MACs, the second 0.5."""
    _write_pruning_recipe(tmp_path, "steps = 2\nfinetune_epochs = 1\nstep_sizes = \"geometric\"\n")
    result = _cli("build", "recipe.toml", "--target", "ort-mobile", "--out", "out", cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "ort-mobile" / "build.json").read_text())
    stages = {s["name"]: s for s in manifest["stages"]}
    assert list(stages) == ["distill", "prune", "quantize", "bundle", "bench", "gate"]
    steps = stages["prune"]["details"]["steps"]
    assert stages["prune"]["details"]["goal_met"] and steps[-1]["macs"] <= 0.5 * steps[0]["macs"] * 1.05
    assert [s["target_fraction"] for s in steps[1:]] == [0.7071, 0.5]
    from edge_kd.models.spec import ModelSpec
    from edge_kd.prune.macs import count_macs

    pruned = ModelSpec.load(tmp_path / "out" / "ort-mobile" / "pruned" / "student.json")
    assert count_macs(pruned.build(), pruned.example_inputs()).total == steps[-1]["macs"]


def test_teacher_as_student_pruned_once_for_all_targets(tmp_path):
    """[student] family = "teacher": the student starts as the teacher and the prune stage shrinks it.
    Neither stage depends on the target here, so the second target copies both from the first."""
    _write_data(tmp_path)
    recipe = RECIPE.replace('family = "tabular_mlp"\nmax_params = 4000', 'family = "teacher"').replace(
        "[quantize]", "[prune]\nenabled = true\ngoal = \"params\"\namount = 0.5\nsteps = 1\n"
                      "finetune_epochs = 2\n\n[quantize]")
    (tmp_path / "recipe.toml").write_text(recipe)
    result = _cli("build", "recipe.toml", "--target", "ort-mobile", "--target", "tflite-int8", "--out", "out",
                  cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    first, second = (json.loads((tmp_path / "out" / t / "build.json").read_text()) for t in ("ort-mobile", "tflite-int8"))
    stages1 = {s["name"]: s for s in first["stages"]}
    stages2 = {s["name"]: s for s in second["stages"]}
    assert stages1["distill"]["details"]["student"]["family"] == "teacher"
    assert stages1["distill"]["status"] == "ok" and stages1["prune"]["status"] == "ok"
    for name in ("distill", "prune"):
        assert stages2[name]["status"] == "reused" and stages2[name]["reused_from"] == "ort-mobile", name
        assert stages2[name]["cache_key"] == stages1[name]["cache_key"]
    assert stages2["quantize"]["status"] == "ok"  # the runtime differs: exported again
    for rel in ("pruned/student.safetensors", "student/student.safetensors", "student/labels.json"):
        assert (tmp_path / "out" / "ort-mobile" / rel).read_bytes() == (tmp_path / "out" / "tflite-int8" / rel).read_bytes()
    teacher_params = stages1["distill"]["details"]["student"]["params"]
    steps = stages1["prune"]["details"]["steps"]
    assert steps[0]["params"] == teacher_params and steps[-1]["params"] <= 0.5 * teacher_params * 1.05
    assert steps[-1]["recovery"]["epochs"] == 2
    assert any(a["path"] == "student/labels.json" for a in second["artifacts"])
    # the shipped artifact of each target is the pruned model and runs in its runtime
    for manifest in (first, second):
        assert manifest["metrics"]["task_metric"]["value"] is not None


def test_console_shows_only_edge_kd_lines_and_a_time_per_stage(built):
    """What `make demo` prints: edge_kd's own progress lines, the time table and the summary; the
    toolchain's logs (torchao, torch, ExecuTorch's runtime lines, warnings) are in OUT/<target>/logs."""
    work, result = built
    noise = ("[threadpool.cpp", "[cpuinfo_utils.cpp", "Failed to load", "Warning", "warn(", "_pytree.py")
    for marker in noise:
        assert marker not in result.stderr and marker not in result.stdout, marker
    assert "time (s)" in result.stderr and "distill" in result.stderr
    logs = [(work / "out" / t / "logs" / "edge-kd.log") for t in TARGETS]
    assert all(p.is_file() for p in logs)
    assert any("[threadpool.cpp" in p.read_text() for p in logs)  # kept, not lost
    assert not (work / "out" / ".edge-kd.lock").exists()  # the lock went with the run


def test_prune_augment_on_data_without_views_is_a_one_line_error(tmp_path):
    """[prune] augment needs photos (random views scored by the teacher); a tabular build exits 2 with one line."""
    _write_pruning_recipe(tmp_path, "steps = 1\nfinetune_epochs = 1\naugment = true\nprotect_residual = true\n")
    result = _cli("build", "recipe.toml", "--target", "ort-mobile", "--out", "out", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "random views" in result.stderr and "Traceback" not in result.stderr
