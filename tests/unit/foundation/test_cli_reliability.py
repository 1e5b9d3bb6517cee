"""Issue 14, case by case, through the CLI's main(): nothing a user has is overwritten and every
user error is exit 2 with one line (benchmarks/reliability.py runs these and ~80 more as subprocesses)."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_kd.cli import main

MLP = ["edge_kd.testing.tiny_models:tiny_mlp", "--input", "features:1x12:float32"]
CNN = ["edge_kd.testing.tiny_models:tiny_cnn", "--input", "image:1x3x32x32:float32"]
ORT = ["--target", "ort-mobile"]
REPO = Path(__file__).resolve().parents[3]

RECIPE = """
name = "tiny-shop"
[teacher]
name = "tabular-mlp"
options = {{ hidden = [8] }}
[teacher.finetune]
epochs = 1
[data]
train = "tabular:{csv}?label=bought&categorical=month&positive=TRUE"
[student]
family = "tabular_mlp"
max_params = 2000
[distill]
epochs = 1
"""


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def _error(capsys, code: int, argv: list[str]) -> str:
    assert main(argv) == code
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("exported")
    assert main(["export", *MLP, *ORT, "--out", str(root / "b")]) == 0
    return root / "b"


@pytest.fixture
def build(exported, tmp_path) -> Path:
    import shutil

    dst = tmp_path / "b"
    shutil.copytree(exported, dst)
    return dst


def _write_shop(path: Path, bad: str | None = None) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pages", "value", "month", "bought"])
        for i in range(60):
            value = round(float(rng.exponential(5)), 2)
            w.writerow([int(rng.integers(0, 40)), bad if (bad and i == 5) else value, ["Feb", "Nov"][i % 2],
                        "TRUE" if value > 5 else "FALSE"])


# ---- 1. gate outputs over an artifact or the profile --------------------------------------------------
@pytest.mark.parametrize("option", ["--junit", "--json", "--markdown"])
def test_case1_gate_never_writes_over_an_artifact(build, capsys, option):
    before = _digest(build)
    line = _error(capsys, 2, ["gate", str(build), option, str(build / "model.ort")])
    assert "model.ort" in line and _digest(build) == before


def test_case1_gate_never_writes_over_the_target_profile(build, tmp_path, capsys):
    profile = tmp_path / "p.toml"
    profile.write_text('extends = "ort-mobile"\nname = "p"\n')
    _error(capsys, 2, ["gate", str(build), "--target", str(profile), "--json", str(profile)])
    assert profile.read_text() == 'extends = "ort-mobile"\nname = "p"\n'


# ---- 2. bench --json over the benchmarked artifact ----------------------------------------------------
def test_case2_bench_json_never_replaces_the_artifact(build, capsys):
    before = _digest(build)
    line = _error(capsys, 2, ["bench", str(build / "model.ort"), *ORT, "--json", str(build / "model.ort")])
    assert "--json" in line and _digest(build) == before


# ---- 3. profile/recipe names cannot leave --out -------------------------------------------------------
@pytest.mark.parametrize("name", ["../escape", "/tmp/edge-kd-abs-escape", "a/b"])
def test_case3_profile_name_cannot_escape_out(tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    _write_shop(tmp_path / "shop.csv")
    (tmp_path / "recipe.toml").write_text(RECIPE.format(csv="shop.csv"))
    (tmp_path / "p.toml").write_text(f'extends = "ort-mobile"\nname = "{name}"\n')
    line = _error(capsys, 2, ["build", "recipe.toml", "--target", "p.toml", "--out", "out"])
    assert "target name" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.toml", "recipe.toml", "shop.csv"]


def test_case3_recipe_name_cannot_escape_the_default_out(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_shop(tmp_path / "shop.csv")
    (tmp_path / "recipe.toml").write_text(RECIPE.format(csv="shop.csv").replace("tiny-shop", "../up"))
    assert "recipe name" in _error(capsys, 2, ["build", "recipe.toml", *ORT])
    assert not (tmp_path.parent / "up").exists()


# ---- 4. two runs into one folder ----------------------------------------------------------------------
def test_case4_second_run_into_a_locked_folder_refuses(build, capsys):
    owner = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "ready"
        (build / ".edge-kd.lock").write_text(json.dumps({"pid": owner.pid, "host": socket.gethostname(),
                                                         "command": "edge-kd build r.toml", "started": "now"}))
        before = _digest(build)
        line = _error(capsys, 2, ["export", *MLP, "--target", "tflite-int8", "--out", str(build)])
        assert f"pid {owner.pid}" in line and _digest(build) == before
    finally:
        owner.kill()
        owner.wait()


def test_case4_two_real_exports_race_for_one_folder(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "edge_kd", "export", *MLP, *ORT, "--out", str(tmp_path / "race")]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = tmp_path / "race" / ".edge-kd.lock"
        while not lock.exists() and first.poll() is None:
            pass
        if first.poll() is not None:
            pytest.skip("the first export finished before the second could start")
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    finally:
        assert first.wait(timeout=300) == 0
    assert second.returncode == 2 and "another edge-kd run is writing into this folder" in second.stderr
    assert not lock.exists()  # the owner released it


# ---- 5. re-export replaces the bundle -----------------------------------------------------------------
def test_case5_reexport_for_another_target_and_name_replaces_model_artifacts(build, capsys):
    assert main(["export", *MLP, "--target", "tflite-int8", "--out", str(build)]) == 0
    assert main(["export", *MLP, *ORT, "--out", str(build), "--name", "v2"]) == 0
    capsys.readouterr()
    manifest = json.loads((build / "build.json").read_text())
    models = [a["path"] for a in manifest["artifacts"] if a["role"] == "model"]
    assert models == ["v2.ort"]
    assert sorted(p.name for p in build.iterdir()) == ["build.json", "logs", "v2.onnx", "v2.ort",
                                                       "v2.required_operators.config"]
    from edge_kd.gate import evaluate

    report = evaluate(str(build))
    size = next(c for c in report.checks if c.name == "bundle.size")
    assert size.value == (build / "v2.ort").stat().st_size


def test_case5_export_never_overwrites_a_file_the_build_does_not_own(build, capsys):
    (build / "mine.onnx").write_text("the user's own file")
    assert "does not own" in _error(capsys, 2, ["export", *MLP, *ORT, "--out", str(build), "--name", "mine"])
    assert (build / "mine.onnx").read_text() == "the user's own file"


# ---- 6. NaN/inf in CSV columns stop before training ---------------------------------------------------
@pytest.mark.parametrize("bad", ["inf", "-Infinity", "1e400"])
def test_case6_distill_refuses_infinite_csv_values_before_writing(tmp_path, capsys, monkeypatch, bad):
    monkeypatch.chdir(tmp_path)
    _write_shop(tmp_path / "shop.csv", bad=bad)
    (tmp_path / "recipe.toml").write_text(RECIPE.format(csv="shop.csv"))
    line = _error(capsys, 2, ["distill", "recipe.toml", *ORT, "--out", "d"])
    assert "row 7" in line and "'value'" in line
    assert not (tmp_path / "d").exists()


def test_case6_quantize_refuses_nan_calibration(tmp_path, capsys):
    x = np.random.default_rng(0).random((4, 3, 32, 32)).astype(np.float32)
    x[1, 0, 0, 0] = np.nan
    np.savez(tmp_path / "c.npz", x0=x)
    line = _error(capsys, 2, ["quantize", *CNN, *ORT, "--calib", f"npz:{tmp_path / 'c.npz'}", "--out",
                              str(tmp_path / "q")])
    assert "NaN" in line and not (tmp_path / "q").exists()


# ---- 7. bench --data with NaN -------------------------------------------------------------------------
def test_case7_bench_data_with_nan_is_exit_2(build, tmp_path, capsys):
    x = np.random.default_rng(0).random((6, 12)).astype(np.float32)
    x[2, 3] = np.nan
    np.savez(tmp_path / "d.npz", x0=x, y=np.zeros(6, np.int64))
    line = _error(capsys, 2, ["bench", str(build / "model.ort"), *ORT, "--data", f"npz:{tmp_path / 'd.npz'}"])
    assert "NaN" in line and "row 2" in line


# ---- 8. a gate that cannot fail, an artifact outside the build ----------------------------------------
def test_case8_accuracy_drop_of_150_percent_is_refused(build, tmp_path, capsys):
    (tmp_path / "lenient.toml").write_text('extends = "ort-mobile"\n[budgets]\naccuracy_drop = "150%"\n')
    assert "accuracy_drop" in _error(capsys, 2, ["gate", str(build), "--target", str(tmp_path / "lenient.toml")])


def test_case8_artifact_path_outside_the_build_fails_the_gate(build, tmp_path, capsys):
    (tmp_path / "outside.ort").write_bytes((build / "model.ort").read_bytes())
    manifest = json.loads((build / "build.json").read_text())
    for a in manifest["artifacts"]:
        if a["role"] == "model":
            a["path"] = "../outside.ort"
    (build / "build.json").write_text(json.dumps(manifest))
    assert main(["gate", str(build)]) == 1
    assert "outside the build folder" in capsys.readouterr().out


# ---- 9. user errors reported as internal errors -------------------------------------------------------
@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "usermods_i14.py").write_text(
        "import sys\n"
        "def raises():\n    raise RuntimeError('download failed')\n"
        "def none():\n    return None\n"
        "def exits():\n    sys.exit(0)\n")
    (tmp_path / "usermods_i14_syntax.py").write_text("def f(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("factory, expect", [("usermods_i14:raises", "download failed"),
                                             ("usermods_i14:none", "returned NoneType"),
                                             ("usermods_i14:exits", "sys.exit(0)"),
                                             ("usermods_i14_syntax:f", "syntax error")])
def test_case9_bad_factories_are_exit_2(user_module, capsys, factory, expect):
    out = user_module / "e"
    line = _error(capsys, 2, ["export", factory, "--input", "x:1x4:float32", *ORT, "--out", str(out)])
    assert expect in line and not out.exists()


def test_case9_profiles_with_binary_garbage_or_invalid_utf8(build, tmp_path, capsys):
    (tmp_path / "garbage.toml").write_bytes(bytes(range(256)) * 2)
    (tmp_path / "latin1.toml").write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    for name in ("garbage.toml", "latin1.toml"):
        p = str(tmp_path / name)
        assert "UTF-8" in _error(capsys, 2, ["gate", str(build), "--target", p])
        assert "UTF-8" in _error(capsys, 2, ["targets", "show", p])
        assert "UTF-8" in _error(capsys, 2, ["export", *MLP, "--target", p, "--out", str(tmp_path / "e")])


@pytest.mark.parametrize("argv_tail, expect", [
    (["--input", "image:1x3x32x32:float32:abc"], "HIGH must be a number"),
    (["--input", "image:100000x100000x3x32:float32"], "elements"),
])
def test_case9_bad_input_specs(tmp_path, capsys, argv_tail, expect):
    line = _error(capsys, 2, ["export", CNN[0], *argv_tail, *ORT, "--out", str(tmp_path / "e")])
    assert expect in line


def test_case9_output_paths(build, tmp_path, capsys):
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    assert "directory" in _error(capsys, 2, ["bench", str(build / "model.ort"), *ORT, "--json", str(tmp_path)])
    assert "symlink" in _error(capsys, 2, ["export", *MLP, *ORT, "--out", str(tmp_path / "dangling")])
    assert "longer than" in _error(capsys, 2, ["gate", str(build), "--json", str(tmp_path / ("n" * 300))])
    assert "longer than" in _error(capsys, 2, ["export", *MLP, *ORT, "--out", str(tmp_path / ("n" * 300))])


def test_case9_prune_latency_budget_without_unit(tmp_path, capsys):
    assert "--latency-budget" in _error(capsys, 2, ["prune", *CNN, *ORT, "--latency-budget", "fast", "--out",
                                                    str(tmp_path / "p")])


def test_case9_decompression_bomb_image(tmp_path, capsys):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))
    for cls in ("a", "b"):
        (tmp_path / "imgs" / "train" / cls).mkdir(parents=True)
        (tmp_path / "imgs" / "train" / cls / "x.png").write_bytes(png)
    line = _error(capsys, 2, ["quantize", *CNN, *ORT, "--calib", f"images:{tmp_path / 'imgs'}?split=train&size=32",
                              "--out", str(tmp_path / "q")])
    assert "decompression bomb" in line


# ---- late checks: options fail before any work --------------------------------------------------------
def test_late_options_fail_first(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # argparse: a usage error, one line
        main(["export", *MLP, *ORT, "--out", str(tmp_path / "e"), "--atol", "nan"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "finite" in err and len(err.strip().splitlines()) == 1
    x = np.random.default_rng(0).random((4, 3, 32, 32)).astype(np.float32)
    np.savez(tmp_path / "c.npz", x0=x)
    assert "--max-drop" in _error(capsys, 2, ["quantize", *CNN, *ORT, "--calib", f"npz:{tmp_path / 'c.npz'}",
                                              "--out", str(tmp_path / "q"), "--max-drop", "lots"])
    assert not (tmp_path / "q").exists()


def test_late_device_cuda_without_gpu(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    _write_shop(tmp_path / "shop.csv")
    (tmp_path / "recipe.toml").write_text(RECIPE.format(csv="shop.csv"))
    for cmd in (["distill", "recipe.toml", *ORT, "--out", "d", "--device", "cuda"],
                ["build", "recipe.toml", *ORT, "--out", "o", "--device", "cuda"]):
        assert "--device cuda" in _error(capsys, 2, cmd)
    assert not (tmp_path / "d").exists() and not (tmp_path / "o").exists()
