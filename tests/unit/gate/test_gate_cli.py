"""``edge-kd gate``: exit codes, outputs, inputs left untouched, and no heavy imports."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from edge_kd.cli import main

HEAVY = ("torch", "executorch", "onnxruntime", "ai_edge_litert", "litert_torch", "tensorflow", "torchao",
         "torch_pruning", "onnx")
REPO = Path(__file__).resolve().parents[3]


def _outputs(tmp_path):
    out = tmp_path / "out"
    return out, ["--json", str(out / "gate.json"), "--junit", str(out / "gate.xml"), "--markdown",
                 str(out / "gate.md")]


def test_exit_0_and_three_outputs(good_build, tmp_path, capsys):
    out, flags = _outputs(tmp_path)
    assert main(["gate", str(good_build), *flags]) == 0
    assert json.loads((out / "gate.json").read_text())["passed"] is True
    assert ET.parse(out / "gate.xml").getroot().get("failures") == "0"
    assert (out / "gate.md").read_text().startswith("<!-- edge-kd-gate -->")
    stdout = capsys.readouterr().out
    assert "PASS    bundle.size" in stdout and "gate PASSED" in stdout


def test_exit_1_writes_reports_and_leaves_inputs_untouched(make_build, tmp_path, capsys):
    build = make_build(width=24)
    before = {p: p.read_bytes() for p in build.rglob("*") if p.is_file()}
    out, flags = _outputs(tmp_path)
    assert main(["gate", str(build), *flags]) == 1
    assert json.loads((out / "gate.json").read_text())["passed"] is False
    assert ET.parse(out / "gate.xml").getroot().get("failures") == "2"
    assert {p: p.read_bytes() for p in build.rglob("*") if p.is_file()} == before
    assert "where the bytes go:" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["gate.json", "gate.md", "gate.xml"]  # no temp files left


def test_several_builds_one_failing_exit_1(make_build, capsys):
    assert main(["gate", str(make_build()), str(make_build(latency=(20.0, 30.0, 40.0))), "--quiet"]) == 1
    assert capsys.readouterr().out.startswith("gate FAILED (1 of 2 build(s))")


def test_baseline_and_tolerance_options(good_build, fx, tmp_path, capsys):
    def slower(m):
        m["metrics"]["latency_ms"]["p90"] = 8.0  # the release ran at 8 ms, this build at 9.5 ms (+18.75%)
    base = fx.baseline_of(good_build, tmp_path / "release", slower)
    assert main(["gate", str(good_build), "--baseline", str(base), "--quiet"]) == 1
    assert main(["gate", str(good_build), "--baseline", str(base), "--max-latency-growth", "20%", "--quiet"]) == 0
    assert main(["gate", str(good_build), "--baseline", str(base.parent), "--max-latency-growth", "1.5ms",
                 "--quiet"]) == 0


def test_one_baseline_per_target(make_build, fx, tmp_path, capsys):
    a, b = make_build(), make_build(target="tflite-int8")
    base_a = fx.baseline_of(a, tmp_path / "rel-a")
    base_b = fx.baseline_of(b, tmp_path / "rel-b")
    assert main(["gate", str(a), str(b), "--baseline", str(base_a), "--baseline", str(base_b), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["gate", str(a), str(b), "--baseline", str(base_a), "--baseline", str(base_a)]) == 2
    assert "a second baseline for target" in capsys.readouterr().err
    assert main(["gate", str(a), str(b), "--baseline", str(base_b), "--baseline", str(fx.baseline_of(
        b, tmp_path / "rel-c"))]) == 2


def _bad(tmp_path, fx, make_build, case):
    good = make_build()
    if case == "missing path":
        return [str(tmp_path / "nope")], "no such build"
    if case == "corrupt json":
        p = tmp_path / "corrupt" / "build.json"
        p.parent.mkdir()
        p.write_text("{not json")
        return [str(p)], "corrupt JSON"
    if case == "newer schema":
        fx.edit_manifest(good, lambda m: m.update(schema_version=2))
        return [str(good)], "schema_version 2 is not supported"
    if case == "baseline for another target":
        other = fx.baseline_of(make_build(target="ort-mobile"), tmp_path / "rel")
        return [str(good), "--baseline", str(other)], "baseline is for target 'ort-mobile'"
    if case == "unknown target":
        return [str(good), "--target", "pixel-99"], "unknown target 'pixel-99'"
    if case == "target of another runtime":
        return [str(good), "--target", "ort-mobile"], "built for runtime executorch"
    if case == "bad tolerance":
        return [str(good), "--max-size-growth", "lots"], "max-size-growth"
    if case == "output over input":
        return [str(good), "--json", str(good / "build.json")], "never modifies inputs"
    if case == "output is a folder":
        return [str(good), "--junit", str(tmp_path)], "is a directory"
    if case == "not a manifest":
        p = tmp_path / "other.json"
        p.write_text('{"hello": "world"}')
        return [str(p)], "not an edge_kd build manifest"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing path", "corrupt json", "newer schema", "baseline for another target",
                                  "unknown target", "target of another runtime", "bad tolerance",
                                  "output over input", "output is a folder", "not a manifest"])
def test_bad_input_exit_2_one_line_no_outputs(tmp_path, fx, make_build, capsys, case):
    args, message = _bad(tmp_path, fx, make_build, case)
    out, flags = _outputs(tmp_path)
    if "--json" in args or "--junit" in args:
        flags = []
    assert main(["gate", *args, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_gate_imports_nothing_heavy(good_build, tmp_path):
    """Hard rule: the gate runs in CI jobs without torch or any runtime."""
    code = (
        "import json, sys\n"
        "from edge_kd.cli import main\n"
        f"rc = main(['gate', {str(good_build)!r}, '--json', {str(tmp_path / 'g.json')!r}, '--quiet'])\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(json.dumps({'rc': rc, 'heavy': heavy}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"rc": 0, "heavy": []}
