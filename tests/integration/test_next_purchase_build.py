"""Next-purchase recommendation end to end from the CLI on the transactions slice the repo ships
(examples/data/online-retail/next_purchase_slice.csv): a tiny SASRec teacher and item-bag student built
for all three targets. Checks the ranking metrics measured through each runtime (with the popularity
baseline), the item-id map shipped as the bundle's preprocessing asset and replayed by `edge-kd verify`,
the XNNPACK op policy, and the data rules' counts recorded in the build."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SLICE = REPO / "examples" / "data" / "online-retail" / "next_purchase_slice.csv"
TARGETS = ["android-arm64-xnnpack", "ort-mobile", "tflite-int8"]


def _recipe() -> str:
    spec = f"transactions:{SLICE}?task=next-purchase&history=12&split="
    return f"""
name = "np-tiny"
[teacher]
name = "sasrec"
options = {{ dim = 16, layers = 1, heads = 2 }}
[teacher.finetune]
epochs = 3
batch_size = 16
[data]
train = "{spec}train"
val = "{spec}val"
test = "{spec}test"
[student]
family = "item_bag"
options = {{ low = 8, high = 8, tied = true }}
[distill]
losses = ["listwise"]
epochs = 2
batch_size = 16
[quantize]
method = "minmax"
calibration_samples = 32
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "EDGE_KD_CACHE": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-m", "edge_kd", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=1800)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("np")
    (work / "recipe.toml").write_text(_recipe())
    args = ["build", "recipe.toml", "--out", "out"]
    for t in TARGETS:
        args += ["--target", t]
    result = _cli(*args, cwd=work)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return work, result


def test_ranking_metrics_through_each_runtime(built):
    work, _ = built
    for target in TARGETS:
        m = json.loads((work / "out" / target / "build.json").read_text())
        for section in ("metrics", "teacher"):
            assert m[section]["task_metric"]["name"] == "recall@10"
            assert 0.0 <= m[section]["task_metric"]["value"] <= 1.0 and 0.0 <= m[section]["ndcg@10"] <= 1.0
            assert m[section]["eval_rows"] == 36                       # every ranked test invoice of the slice
        assert m["metrics"]["baseline"]["name"] == "popularity"
        assert 0.0 < m["metrics"]["baseline"]["recall@10"] <= 1.0
        stages = {s["name"]: s for s in m["stages"]}
        data = stages["distill"]["details"]["data"]
        assert data["test"]["rows_without_customer"] == 7 and data["test"]["cancellation_rows"] == 7
        assert data["test"]["cold_targets"] == 80 and data["train"]["cold_customers"] == 24
        assert stages["distill"]["details"]["teacher"]["fit"]["train_cpu_seconds"] > 0
        assert stages["distill"]["details"]["student"]["family"] == "item_bag"
        # The transfer set (on by default): augmented copies of the histories, scored by the teacher.
        transfer = stages["distill"]["details"]["transfer"]
        assert transfer["augmented"] == transfer["rows"] > 0 and transfer["augment_copies"] == 2
        checks = {c["name"]: c["passed"] for c in m["gate"]["checks"]}
        assert checks["ops.policy"] is True and checks["bundle.contract"] is True


def test_item_map_ships_and_replays(built):
    work, _ = built
    for target in TARGETS:
        root = work / "out" / target
        asset = json.loads((root / "bundle" / "preprocess.json").read_text())
        assert asset["format"] == "edge_kd.items" and len(asset["labels"]) == 314 and asset["history"] == 12
        assert asset["padding"] == "left" and asset["padding_id"] == 0
        vectors = json.loads((root / "vectors" / "vectors.json").read_text())
        assert all("history" in v["raw"] for v in vectors["vectors"])
    result = _cli("verify", *(str(work / "out" / t) for t in TARGETS), cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr


def test_int8_item_tables_in_the_xnnpack_artifact(built):
    work, _ = built
    m = json.loads((work / "out" / "android-arm64-xnnpack" / "build.json").read_text())
    selection = {s["name"]: s for s in m["stages"]}["quantize"]["details"]["selection"]
    if selection["shipped"] == "int8":  # the item table is read by ExecuTorch's int8 lookup kernel
        assert "embedding_byte" in json.dumps(m["metrics"]["ops"])
    else:
        assert selection["reason"]
