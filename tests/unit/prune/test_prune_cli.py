"""``edge-kd prune``: exit codes, artifacts, manifest (no runtime latency here: --no-latency)."""
import json

import pytest

from edge_kd.cli import main
from edge_kd.models.spec import ModelSpec

CNN = ["edge_kd.testing.tiny_models:tiny_cnn", "--input", "image:1x3x32x32:float32", "--target", "ort-mobile"]


def test_prune_writes_spec_weights_and_manifest(tmp_path, capsys):
    out = tmp_path / "b"
    code = main(["prune", *CNN, "--macs", "0.5", "--steps", "2", "--round-to", "4", "--no-latency", "--out", str(out)])
    assert code == 0
    manifest = json.loads((out / "build.json").read_text())
    stage = next(s for s in manifest["stages"] if s["name"] == "prune")
    assert stage["status"] == "ok" and [s["step"] for s in stage["details"]["steps"]] == [0, 1, 2]
    assert stage["details"]["steps"][-1]["macs_ratio"] <= 0.5
    assert manifest["prune"]["goal_met"] is True
    assert {a["role"] for a in manifest["artifacts"]} == {"pruned_model_spec", "pruned_model_weights"}
    model = ModelSpec.load(out / "model.json").build()
    assert model.features[0].out_channels % 4 == 0
    assert "MACs ratio" in capsys.readouterr().out


def test_prune_geometric_step_sizes_reach_the_cli_schedule(tmp_path):
    out = tmp_path / "b"
    code = main(["prune", *CNN, "--macs", "0.75", "--steps", "2", "--step-sizes", "geometric", "--round-to", "1",
                 "--no-latency", "--out", str(out)])
    assert code == 0
    manifest = json.loads((out / "build.json").read_text())
    steps = next(s for s in manifest["stages"] if s["name"] == "prune")["details"]["steps"]
    assert [s["target_fraction"] for s in steps[1:]] == [0.5, 0.25]  # even steps: 0.625, 0.25


@pytest.mark.parametrize("ratio", ["0", "1", "1.5", "-0.2"])
def test_ratio_outside_interval_exits_2_without_artifacts(tmp_path, capsys, ratio):
    out = tmp_path / "b"
    assert main(["prune", *CNN, "--ratio", ratio, "--no-latency", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "outside (0, 1)" in err and "Traceback" not in err
    assert not out.exists()


def test_untraceable_model_exits_2_naming_the_problem(tmp_path, capsys):
    out = tmp_path / "b"
    code = main(["prune", "tests.unit.prune.test_prune_pruner:DataDependent", "--input", "x:1x4:float32",
                 "--target", "ort-mobile", "--macs", "0.5", "--no-latency", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot trace DataDependent" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_protect_everything_exits_2(tmp_path, capsys):
    code = main(["prune", *CNN, "--macs", "0.5", "--protect", "features", "--no-latency", "--out", str(tmp_path / "b")])
    assert code == 2 and "every prunable layer is protected" in capsys.readouterr().err


def test_goal_is_required(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["prune", *CNN, "--out", str(tmp_path / "b")])
    assert exc.value.code == 2


def test_missing_input_spec(tmp_path, capsys):
    code = main(["prune", "edge_kd.testing.tiny_models:tiny_cnn", "--target", "ort-mobile", "--macs", "0.5",
                 "--no-latency", "--out", str(tmp_path / "b")])
    assert code == 2 and "--input is required" in capsys.readouterr().err


def test_prune_with_data_records_accuracy(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    npz = tmp_path / "d.npz"
    np.savez(npz, features=rng.uniform(-1, 1, (64, 12)).astype(np.float32), labels=rng.integers(0, 2, 64))
    out = tmp_path / "b"
    code = main(["prune", "edge_kd.testing.tiny_models:tiny_mlp", "--input", "features:1x12:float32",
                 "--target", "tflite-int8", "--ratio", "0.4", "--round-to", "1", "--data", f"npz:{npz}",
                 "--recovery-batches", "2", "--batch-size", "8", "--no-latency", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    steps = json.loads((out / "build.json").read_text())["stages"][-1]["details"]["steps"]
    assert steps[0]["accuracy"] is not None and steps[-1]["recovery"]["batches"] == 2


def test_prune_recovery_epochs_and_cpu_time(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    npz = tmp_path / "d.npz"
    np.savez(npz, features=rng.uniform(-1, 1, (64, 12)).astype(np.float32), labels=rng.integers(0, 2, 64))
    base = ["prune", "edge_kd.testing.tiny_models:tiny_mlp", "--input", "features:1x12:float32",
            "--target", "ort-mobile", "--ratio", "0.4", "--round-to", "1", "--data", f"npz:{npz}", "--steps", "2",
            "--batch-size", "8", "--no-latency"]
    out = tmp_path / "b"
    assert main([*base, "--recovery-epochs", "1", "--final-epochs", "3", "--out", str(out)]) == 0, \
        capsys.readouterr().err
    details = json.loads((out / "build.json").read_text())["stages"][-1]["details"]
    assert [s["recovery"]["epochs"] for s in details["steps"][1:]] == [1, 3]
    assert all(s["cpu_seconds"] > 0 for s in details["steps"])
    assert details["recovery"]["final_epochs"] == 3 and details["cpu_seconds"] > 0
    assert main([*base, "--final-epochs", "0", "--out", str(tmp_path / "c")]) == 2
    assert "--final-epochs must be >= 1" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_lowrank_needs_latency(tmp_path, capsys):
    code = main(["prune", *CNN, "--macs", "0.5", "--lowrank", "0.9", "--no-latency", "--out", str(tmp_path / "b")])
    assert code == 2 and "cannot be combined with --no-latency" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
