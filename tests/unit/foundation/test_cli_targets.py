"""The CLI contract other issues and users' CI scripts rely on: outputs, exit codes, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_kd", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)


def test_targets_list_json():
    result = run_cli("targets", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["android-arm64-xnnpack", "ort-mobile", "tflite-int8"]
    for row in rows:
        for key in ("name", "runtime", "format", "size_budget_bytes", "latency_budget_ms", "threads"):
            assert key in row
    assert {r["runtime"] for r in rows} == {"executorch", "onnxruntime", "litert"}
    assert {r["format"] for r in rows} == {"pte", "ort", "tflite"}


def test_targets_list_table():
    result = run_cli("targets", "list")
    assert result.returncode == 0
    assert "android-arm64-xnnpack" in result.stdout and "size budget" in result.stdout


def test_targets_show_resolves_extends(tmp_path):
    profile = tmp_path / "mine.toml"
    profile.write_text('extends = "tflite-int8"\n[budgets]\nlatency_p90 = "7ms"\n')
    result = run_cli("targets", "show", str(profile), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["name"] == "mine" and data["runtime"]["name"] == "litert"
    assert data["budgets"]["latency_p90"] == "7ms"
    assert "extends" not in data


def test_targets_show_by_name_text():
    result = run_cli("targets", "show", "ort-mobile")
    assert result.returncode == 0 and "[budgets]" in result.stdout and "onnxruntime" in result.stdout


def test_targets_validate_all_shipped():
    result = run_cli("targets", "validate", *sorted(str(p) for p in (REPO / "targets").glob("*.toml")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok") == 3


def test_targets_validate_reports_each_bad_file(tmp_path):
    good = REPO / "targets" / "ort-mobile.toml"
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "ort-mobile"\n[budgets]\nartifact_size = "-1MiB"\n')
    result = run_cli("targets", "validate", str(good), str(bad))
    assert result.returncode == 2
    assert "budgets.artifact_size" in result.stderr and str(bad) in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_target_is_one_line_exit_2():
    result = run_cli("targets", "show", "no-such-target")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "unknown target" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_traceback():
    result = run_cli("--debug", "targets", "show", "no-such-target")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_usage_error_exit_2():
    assert run_cli("targets", "frobnicate").returncode == 2
    assert run_cli().returncode == 2


@pytest.mark.parametrize("args", [["--help"], ["targets", "--help"], ["targets", "list", "--help"]])
def test_help(args):
    result = run_cli(*args)
    assert result.returncode == 0 and "usage:" in result.stdout


def test_every_subcommand_has_help():
    from edge_kd.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert "targets" in subparsers.choices
    for name in subparsers.choices:
        result = run_cli(name, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout, name
