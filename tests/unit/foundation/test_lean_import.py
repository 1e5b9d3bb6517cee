"""`import edge_kd`, `edge-kd --help` and `edge-kd targets ...` must not import heavy backends."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
HEAVY = ["torch", "executorch", "onnxruntime", "ai_edge_litert", "litert_torch", "torchao", "torch_pruning",
         "tensorflow", "onnx", "transformers"]

PROBE = """
import contextlib, io, json, sys
{setup}
heavy = {heavy!r}
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""

CASES = {
    "import edge_kd": "import edge_kd; edge_kd.load_target('ort-mobile')",
    "edge-kd --help": ("from edge_kd.cli import main\n"
                       "with contextlib.redirect_stdout(io.StringIO()):\n"
                       "    try: main(['--help'])\n"
                       "    except SystemExit: pass"),
    "edge-kd targets list": ("from edge_kd.cli import main\n"
                             "with contextlib.redirect_stdout(io.StringIO()): main(['targets', 'list', '--json'])"),
    "edge-kd targets show": ("from edge_kd.cli import main\n"
                             "with contextlib.redirect_stdout(io.StringIO()): main(['targets', 'show', 'tflite-int8'])"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_heavy_backend_is_imported(case):
    code = PROBE.format(setup=CASES[case], heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [], f"{case} imported heavy modules"


def test_targets_list_answers_fast():
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "edge_kd", "targets", "list"], capture_output=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0
    # Generous on a shared 2-core machine; it takes ~0.1 s when quiet. Importing torch alone takes > 1.5 s.
    assert elapsed < 1.5, f"edge-kd targets list took {elapsed:.2f}s"
