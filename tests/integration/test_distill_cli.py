"""``edge-kd distill`` end to end on a tiny tabular task (a recipe, a custom profile via extends and a
CSV written here): sized to the budget, trained, saved as safetensors + ModelSpec JSON that reloads
without unpickling code, recorded in build.json; --resume reuses the finished stage; bad input exits 2."""
import json

import numpy as np
import pytest
import torch

from edge_kd.cli import main
from edge_kd.models.spec import ModelSpec

pytestmark = pytest.mark.integration
torch.set_num_threads(1)


def _write_case(tmp_path, budget="48KiB", epochs=3):
    rng = np.random.default_rng(0)
    rows = ["a,b,c,color,label"]
    for _ in range(240):
        a, b, c = rng.normal(size=3)
        color = rng.choice(["red", "green", "blue"])
        label = "yes" if a + 0.5 * b + (color == "red") + 0.3 * rng.normal() > 0.5 else "no"
        rows.append(f"{a:.4f},{b:.4f},{c:.4f},{color},{label}")
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "tiny.toml").write_text(f'extends = "ort-mobile"\nname = "tiny-tab"\n[budgets]\n'
                                        f'artifact_size = "{budget}"\ndownload_size = "{budget}"\n')
    (tmp_path / "recipe.toml").write_text(f'''
name = "tiny-purchase"
[teacher]
name = "tabular-mlp"
options = {{ hidden = [32, 16] }}
[teacher.finetune]
epochs = 5
[data]
train = "tabular:rows.csv?label=label&categorical=color&positive=yes"
cache_dir = "cache"
[student]
family = "tabular_mlp"
options = {{ knob = "hidden", low = 8, high = 512, step = 8 }}
[distill]
losses = ["hinton"]
temperature = 2.0
alpha = 0.5
epochs = {epochs}
batch_size = 32
lr = 0.01
options = {{ patience = 5 }}
''')
    return tmp_path / "recipe.toml", tmp_path / "tiny.toml"


def test_distill_cli_end_to_end_and_resume(tmp_path, capsys):
    recipe, target = _write_case(tmp_path)
    out = tmp_path / "build"
    assert main(["distill", str(recipe), "--target", str(target), "--out", str(out), "--device", "cpu"]) == 0
    manifest = json.loads((out / "build.json").read_text())
    stage = next(s for s in manifest["stages"] if s["name"] == "distill")
    d = stage["details"]
    assert stage["status"] == "ok"
    assert d["sizing"]["bundle_bytes"] <= 48 * 1024 and d["sizing"]["method"] == "int8-export"
    assert d["sizing"]["knob"] == "hidden" and d["sizing"]["attempts"]
    assert d["epochs"] == 3 and d["metric"] == "roc_auc" and 0.5 < d["test_roc_auc_pytorch"] <= 1.0
    roles = {a["role"] for a in manifest["artifacts"]}
    assert {"student-weights", "student-spec", "preprocessing"} <= roles
    spec = ModelSpec.load(out / "student" / "student.json")
    model = spec.build()
    assert spec.kwargs["hidden"] == d["sizing"]["value"]
    x = spec.example_inputs()
    assert model(*x).shape == (1, 2)
    assert "student tabular_mlp hidden=" in capsys.readouterr().out

    # a finished stage is reused on --resume (no retraining)
    assert main(["distill", str(recipe), "--target", str(target), "--out", str(out), "--resume", "--device", "cpu"]) == 0
    assert "reusing the completed stage" in capsys.readouterr().err


def test_distill_cli_budget_too_small_exits_2(tmp_path, capsys):
    recipe, target = _write_case(tmp_path, budget="4KiB")
    code = main(["distill", str(recipe), "--target", str(target), "--out", str(tmp_path / "b"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "smallest achievable size is" in err and "Traceback" not in err
    assert not (tmp_path / "b" / "student").exists()
