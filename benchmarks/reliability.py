"""Hostile and careless inputs across every command: does edge-kd refuse each one cleanly?

For every case the script runs the real CLI (``python -m edge_kd ...``) in a scratch folder and
records the exit code, the stderr lines, and the sha256 of every file in the folder before and after.
A case passes when the exit code is the expected one (2 for bad input, 1 where a failed budget or
gate check is the point), stderr is exactly one line, no Python traceback is printed, and no file
that existed before was changed or deleted (nothing a user had is overwritten).

Needs no dataset: the fixtures are tiny models from ``edge_kd.testing`` exported here, a small
generated tabular CSV, and hand-made bad files. Writes benchmarks/results/reliability.json and
reliability.md.

    .venv/bin/python benchmarks/reliability.py            # [--only gate,bench] [--work DIR] [--keep]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MLP = ["edge_kd.testing.tiny_models:tiny_mlp", "--input", "features:1x12:float32"]
CNN = ["edge_kd.testing.tiny_models:tiny_cnn", "--input", "image:1x3x32x32:float32"]
LONG = "n" * 300

RECIPE = """
name = "tiny-shop"
[teacher]
name = "tabular-mlp"
options = {{ hidden = [16] }}
[teacher.finetune]
epochs = 2
batch_size = 64
[data]
train = "tabular:{csv}?label=bought&categorical=month&positive=TRUE"
[student]
family = "tabular_mlp"
max_params = 2000
[distill]
epochs = 2
[quantize]
calibration_samples = 16
method = "minmax"
"""

USER_FACTORIES = '''
import sys

def raises():
    raise RuntimeError("checkpoint download failed")

def returns_none():
    return None

def exits():
    sys.exit(0)

def not_a_module():
    return {"weights": [1, 2, 3]}
'''


@dataclass
class Case:
    name: str
    issue: str  # the numbered case of issue 14 it covers ("" for the extra ones)
    argv: list[str]
    expect: int = 2
    setup: Callable[[Path], None] | None = None
    concurrent: list[str] | None = None  # a first command started before argv (the lock case)
    note: str = ""
    command: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.command = self.argv[0]


def _png(width: int, height: int) -> bytes:
    """A syntactically valid PNG header announcing ``width`` x ``height`` pixels (Pillow checks the
    size for decompression bombs when it opens the file, before decoding any pixel)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_kd", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def make_fixtures(work: Path, env: dict[str, str]) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    for args in (["export", *MLP, "--target", "ort-mobile", "--out", "b"],
                 ["export", *MLP, "--target", "ort-mobile", "--out", "escaped"]):
        r = _run(args, work, env)
        if r.returncode:
            raise SystemExit(f"fixture export failed: {r.stderr[-2000:]}")
    shutil.copy(REPO / "targets" / "ort-mobile.toml", work / "profile.toml")
    (work / "garbage.toml").write_bytes(bytes(rng.integers(0, 256, 512, dtype=np.uint8)))
    (work / "latin1.toml").write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    (work / "escape.toml").write_text('extends = "ort-mobile"\nname = "../escape"\n')
    (work / "absolute.toml").write_text(f'extends = "ort-mobile"\nname = "{work / "abs-escape"}"\n')
    (work / "drop150.toml").write_text('extends = "ort-mobile"\nname = "lenient"\n[budgets]\naccuracy_drop = "150%"\n')
    (work / "userfactories.py").write_text(USER_FACTORIES)
    (work / "syntaxerr.py").write_text("def model(:\n    pass\n")
    (work / "exits_on_import.py").write_text("import sys\nsys.exit(0)\n")
    (work / "empty_dir").mkdir()
    (work / "dangling").symlink_to(work / "missing-folder")
    (work / "dangling.json").symlink_to(work / "missing-folder" / "x.json")
    (work / "b" / "user-notes.onnx").write_text("a user's own file sitting in the build folder\n")
    (work / "foreign").mkdir()
    (work / "foreign" / "thesis.docx").write_text("someone else's file\n")
    # the gate must not take a manifest whose artifact path points outside the build
    (work / "outside.ort").write_bytes((work / "escaped" / "model.ort").read_bytes())
    m = json.loads((work / "escaped" / "build.json").read_text())
    for a in m["artifacts"]:
        if a["role"] == "model":
            a["path"] = "../outside.ort"
    m["metrics"].update({"latency_ms": {"p50": 0.1, "p90": 0.1}, "task_metric": {"name": "accuracy", "value": 0.9}})
    m["teacher"] = {"task_metric": {"name": "accuracy", "value": 0.9}}
    (work / "escaped" / "build.json").write_text(json.dumps(m, indent=2))
    (work / "corrupt").mkdir()
    (work / "corrupt" / "build.json").write_bytes(b"\x00\xff{not json")
    # data
    x = rng.random((8, 12)).astype(np.float32)
    y = rng.integers(0, 2, 8)
    np.savez(work / "clean.npz", x0=x, y=y)
    xn = x.copy()
    xn[3, 5] = np.nan
    np.savez(work / "nan.npz", x0=xn, y=y)
    xi = x.copy()
    xi[0, 0] = np.inf
    np.savez(work / "inf.npz", x0=xi, y=y)
    img = rng.random((8, 3, 32, 32)).astype(np.float32)
    img[2, 0, 0, 0] = np.nan
    np.savez(work / "nan_images.npz", x0=img, y=rng.integers(0, 4, 8))
    img[2, 0, 0, 0] = 0.5
    np.savez(work / "images.npz", x0=img, y=rng.integers(0, 4, 8))
    (work / "pickle.npz").write_bytes(b"PK\x03\x04 not really a zip")
    for split in ("train",):
        for cls in ("a", "b"):
            folder = work / "bomb_images" / split / cls
            folder.mkdir(parents=True)
        (work / "bomb_images" / split / "a" / "bomb.png").write_bytes(_png(20000, 20000))
        (work / "bomb_images" / split / "b" / "bomb2.png").write_bytes(_png(20000, 20000))
    with open(work / "shop.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pages", "duration", "value", "month", "bought"])
        for i in range(120):
            pages, dur, value = int(rng.integers(0, 40)), round(float(rng.exponential(300)), 1), round(float(rng.exponential(5)), 2)
            w.writerow([pages, dur, value, ["Feb", "Nov"][i % 2], "TRUE" if value + 0.1 * pages > 6 else "FALSE"])
    rows = (work / "shop.csv").read_text().splitlines()
    rows[7] = rows[7].replace(rows[7].split(",")[1], "inf", 1)
    (work / "shop_inf.csv").write_text("\n".join(rows) + "\n")
    rows = (work / "shop.csv").read_text().splitlines()
    rows[9] = rows[9].replace(rows[9].split(",")[2], "1e400", 1)
    (work / "shop_overflow.csv").write_text("\n".join(rows) + "\n")
    (work / "recipe.toml").write_text(RECIPE.format(csv="shop.csv"))
    (work / "recipe_inf.toml").write_text(RECIPE.format(csv="shop_inf.csv"))
    (work / "recipe_overflow.toml").write_text(RECIPE.format(csv="shop_overflow.csv"))
    (work / "recipe_up.toml").write_text(RECIPE.format(csv="shop.csv").replace('name = "tiny-shop"', 'name = "../up"'))
    (work / "recipe_latin1.toml").write_bytes(RECIPE.format(csv="shop.csv").replace("tiny-shop", "caf\xe9").encode("latin-1"))
    (work / "spec_latin1.json").write_bytes(b'{"factory": "caf\xe9"}')
    (work / "spec_empty.json").write_text("{}")
    # a build folder held by a live run (this script's own process) on this host
    for folder in ("locked", "locked_build"):
        (work / folder).mkdir()
        (work / folder / ".edge-kd.lock").write_text(json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "command": "edge-kd build recipe.toml",
             "started": "2026-12-03T00:00:00+00:00"}))


def cases() -> list[Case]:
    ort = ["--target", "ort-mobile"]
    c = [
        # ---- gate ----
        Case("gate --junit over the shipped artifact", "1", ["gate", "b", "--junit", "b/model.ort"]),
        Case("gate --json over an intermediate artifact", "1", ["gate", "b", "--json", "b/model.onnx"]),
        Case("gate --markdown over the --target profile", "1",
             ["gate", "b", "--target", "profile.toml", "--markdown", "profile.toml"]),
        Case("gate --json over build.json", "1", ["gate", "b", "--json", "b/build.json"]),
        Case("gate --json over the baseline", "1", ["gate", "b", "--baseline", "escaped", "--json", "escaped/build.json"]),
        Case("gate --json and --junit to one file", "", ["gate", "b", "--json", "r.xml", "--junit", "r.xml"]),
        Case("gate with accuracy_drop = 150%", "8", ["gate", "b", "--target", "drop150.toml"]),
        Case("gate: artifact path ../ outside the build", "8", ["gate", "escaped"], expect=1,
             note="exit 1: the artifacts.integrity check fails"),
        Case("gate --target binary garbage", "9", ["gate", "b", "--target", "garbage.toml"]),
        Case("gate --target invalid UTF-8", "9", ["gate", "b", "--target", "latin1.toml"]),
        Case("gate --json dangling symlink", "9", ["gate", "b", "--json", "dangling.json"]),
        Case("gate --json a directory", "9", ["gate", "b", "--json", "empty_dir"]),
        Case("gate --json 300-character name", "9", ["gate", "b", "--json", LONG + ".json"]),
        Case("gate a missing build", "", ["gate", "no-such-build"]),
        Case("gate a corrupt build.json", "", ["gate", "corrupt"]),
        Case("gate --max-size-growth lots", "", ["gate", "b", "--baseline", "b", "--max-size-growth", "lots"]),
        # ---- bench ----
        Case("bench --json over the benchmarked artifact", "2", ["bench", "b/model.ort", *ort, "--json", "b/model.ort"]),
        Case("bench --json over the --target profile", "2",
             ["bench", "b/model.ort", "--target", "profile.toml", "--json", "profile.toml"]),
        Case("bench --json over the --data file", "2",
             ["bench", "b/model.ort", *ort, "--data", "npz:clean.npz", "--json", "clean.npz"]),
        Case("bench --json a directory", "9", ["bench", "b/model.ort", *ort, "--json", "empty_dir"]),
        Case("bench --json dangling symlink", "9", ["bench", "b/model.ort", *ort, "--json", "dangling.json"]),
        Case("bench --data with NaN inputs", "7", ["bench", "b/model.ort", *ort, "--data", "npz:nan.npz"]),
        Case("bench --data with inf inputs", "7", ["bench", "b/model.ort", *ort, "--data", "npz:inf.npz"]),
        Case("bench --data not an npz", "", ["bench", "b/model.ort", *ort, "--data", "npz:pickle.npz"]),
        Case("bench --input HIGH not a number", "9",
             ["bench", "b/model.ort", *ort, "--input", "features:1x12:float32:abc"]),
        Case("bench --input shape too large", "9",
             ["bench", "b/model.ort", *ort, "--input", "features:100000x100000x100:float32"]),
        Case("bench --target binary garbage", "9", ["bench", "b/model.ort", "--target", "garbage.toml"]),
        Case("bench a missing artifact", "", ["bench", "missing.ort", *ort]),
        Case("bench --limit 0", "", ["bench", "b/model.ort", *ort, "--data", "npz:clean.npz", "--limit", "0"]),
        Case("bench artifact of another runtime", "", ["bench", "b/model.ort", "--target", "tflite-int8"]),
        # ---- export ----
        Case("export factory that raises", "9", ["export", "userfactories:raises", "--input", "x:1x4:float32",
                                                  *ort, "--out", "e1"]),
        Case("export factory that returns None", "9", ["export", "userfactories:returns_none", "--input",
                                                        "x:1x4:float32", *ort, "--out", "e1"]),
        Case("export factory that returns a dict", "", ["export", "userfactories:not_a_module", "--input",
                                                         "x:1x4:float32", *ort, "--out", "e1"]),
        Case("export factory with a syntax error", "9", ["export", "syntaxerr:model", "--input", "x:1x4:float32",
                                                          *ort, "--out", "e1"]),
        Case("export factory that calls sys.exit(0)", "9", ["export", "userfactories:exits", "--input",
                                                             "x:1x4:float32", *ort, "--out", "e1"]),
        Case("export module that exits on import", "9", ["export", "exits_on_import:model", "--input",
                                                          "x:1x4:float32", *ort, "--out", "e1"]),
        Case("export --input HIGH not a number", "9",
             ["export", MLP[0], "--input", "features:1x12:float32:abc", *ort, "--out", "e1"]),
        Case("export --input shape too large", "9",
             ["export", MLP[0], "--input", "features:100000x100000x100:float32", *ort, "--out", "e1"]),
        Case("export --atol nan", "late", ["export", *MLP, *ort, "--out", "e1", "--atol", "nan"]),
        Case("export --atol -1", "late", ["export", *MLP, *ort, "--out", "e1", "--atol", "-1"]),
        Case("export --out dangling symlink", "9", ["export", *MLP, *ort, "--out", "dangling"]),
        Case("export --out 300-character name", "9", ["export", *MLP, *ort, "--out", LONG]),
        Case("export --name ../x", "3", ["export", *MLP, *ort, "--out", "e1", "--name", "../x"]),
        Case("export --name 300 characters", "9", ["export", *MLP, *ort, "--out", "e1", "--name", LONG]),
        Case("export over a file the build does not own", "1",
             ["export", *MLP, *ort, "--out", "b", "--name", "user-notes"]),
        Case("export into a folder of someone else's files", "", ["export", *MLP, *ort, "--out", "foreign"]),
        Case("export into a folder another run holds", "4", ["export", *MLP, *ort, "--out", "locked"]),
        Case("export while another export runs into the same --out", "4",
             ["export", *MLP, *ort, "--out", "race"], concurrent=["export", *MLP, *ort, "--out", "race"]),
        Case("export --target invalid UTF-8", "9", ["export", *MLP, "--target", "latin1.toml", "--out", "e1"]),
        Case("export --kwargs not JSON", "", ["export", *MLP, *ort, "--out", "e1", "--kwargs", "{bad"]),
        Case("export --weights a TOML file", "", ["export", *MLP, *ort, "--out", "e1", "--weights", "profile.toml"]),
        # ---- quantize ----
        Case("quantize --max-drop lots", "late", ["quantize", *CNN, *ort, "--calib", "npz:nan_images.npz",
                                                  "--out", "q1", "--max-drop", "lots"]),
        Case("quantize --calib with NaN", "6", ["quantize", *CNN, *ort, "--calib", "npz:nan_images.npz",
                                                "--out", "q1"]),
        Case("quantize --calib decompression bomb image", "9",
             ["quantize", *CNN, *ort, "--calib", "images:bomb_images?split=train&size=32", "--out", "q1"]),
        Case("quantize --out dangling symlink", "9", ["quantize", *CNN, *ort, "--calib", "npz:clean.npz",
                                                      "--out", "dangling"]),
        Case("quantize --name ../x", "3", ["quantize", *CNN, *ort, "--calib", "npz:clean.npz", "--out", "q1",
                                           "--name", "../x"]),
        Case("quantize a model spec with invalid UTF-8", "9",
             ["quantize", "spec_latin1.json", *ort, "--calib", "npz:clean.npz", "--out", "q1"]),
        Case("quantize a model spec without fields", "", ["quantize", "spec_empty.json", *ort, "--calib",
                                                          "npz:clean.npz", "--out", "q1"]),
        Case("quantize --samples 0", "", ["quantize", *CNN, *ort, "--calib", "npz:clean.npz", "--out", "q1",
                                          "--samples", "0"]),
        Case("quantize into a folder another run holds", "4", ["quantize", *CNN, *ort, "--calib",
                                                                "npz:images.npz", "--out", "locked"]),
        Case("quantize --target accuracy_drop 150%", "8", ["quantize", *CNN, "--target", "drop150.toml",
                                                           "--calib", "npz:clean.npz", "--out", "q1"]),
        # ---- prune ----
        Case("prune --latency-budget fast", "9", ["prune", *CNN, *ort, "--latency-budget", "fast", "--out", "p1"]),
        Case("prune --latency-budget 0ms", "", ["prune", *CNN, *ort, "--latency-budget", "0ms", "--out", "p1"]),
        Case("prune --out dangling symlink", "9", ["prune", *CNN, *ort, "--ratio", "0.5", "--out", "dangling"]),
        Case("prune a factory that raises", "9", ["prune", "userfactories:raises", "--input", "x:1x4:float32",
                                                  *ort, "--ratio", "0.5", "--no-latency", "--out", "p1"]),
        Case("prune into a folder another run holds", "4", ["prune", *CNN, *ort, "--ratio", "0.5", "--no-latency",
                                                             "--out", "locked"]),
        Case("prune --ratio 1.5", "", ["prune", *CNN, *ort, "--ratio", "1.5", "--out", "p1"]),
        # ---- distill ----
        Case("distill on a CSV with inf", "6", ["distill", "recipe_inf.toml", *ort, "--out", "d1"]),
        Case("distill on a CSV with a float32 overflow", "6", ["distill", "recipe_overflow.toml", *ort, "--out", "d1"]),
        Case("distill --device cuda without a GPU", "late", ["distill", "recipe.toml", *ort, "--out", "d1",
                                                              "--device", "cuda"]),
        Case("distill --out dangling symlink", "9", ["distill", "recipe.toml", *ort, "--out", "dangling"]),
        Case("distill a recipe with invalid UTF-8", "9", ["distill", "recipe_latin1.toml", *ort, "--out", "d1"]),
        Case("distill into a folder another run holds", "4", ["distill", "recipe.toml", *ort, "--out", "locked"]),
        # ---- build ----
        Case("build with a profile named ../escape", "3", ["build", "recipe.toml", "--target", "escape.toml",
                                                            "--out", "o1"]),
        Case("build with a profile named by an absolute path", "3", ["build", "recipe.toml", "--target",
                                                                      "absolute.toml", "--out", "o1"]),
        Case("build a recipe named ../up without --out", "3", ["build", "recipe_up.toml", *ort]),
        Case("build into a folder another run holds", "4", ["build", "recipe.toml", *ort, "--out", "locked_build"]),
        Case("build on a CSV with inf", "6", ["build", "recipe_inf.toml", *ort, "--out", "o1"]),
        Case("build --device cuda without a GPU", "late", ["build", "recipe.toml", *ort, "--out", "o1",
                                                            "--device", "cuda"]),
        Case("build --json over the recipe", "", ["build", "recipe.toml", *ort, "--out", "o1", "--json", "recipe.toml"]),
        Case("build --target binary garbage", "9", ["build", "recipe.toml", "--target", "garbage.toml", "--out", "o1"]),
        Case("build --target accuracy_drop 150%", "8", ["build", "recipe.toml", "--target", "drop150.toml",
                                                        "--out", "o1"]),
        Case("build --out dangling symlink", "9", ["build", "recipe.toml", *ort, "--out", "dangling"]),
        Case("build into a folder of someone else's files", "", ["build", "recipe.toml", *ort, "--out", "foreign"]),
        # ---- report / targets ----
        Case("report --out the build folder itself", "1", ["report", "b", "--out", "b"]),
        Case("report --out dangling symlink", "9", ["report", "b", "--out", "dangling"]),
        Case("report a corrupt build", "", ["report", "corrupt", "--out", "r1"]),
        Case("targets show binary garbage", "9", ["targets", "show", "garbage.toml"]),
        Case("targets validate invalid UTF-8", "9", ["targets", "validate", "latin1.toml"]),
    ]
    return c


def snapshot(work: Path) -> dict[str, str]:
    out = {}
    for root, dirs, files in os.walk(work):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "cache")]
        for f in files:
            p = Path(root) / f
            if p.is_symlink():
                out[str(p.relative_to(work))] = "symlink->" + os.readlink(p)
                continue
            out[str(p.relative_to(work))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_case(case: Case, work: Path, env: dict[str, str]) -> dict:
    before = snapshot(work)
    start = time.perf_counter()
    first = None
    if case.concurrent:
        first = subprocess.Popen([sys.executable, "-m", "edge_kd", *case.concurrent], cwd=work, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lock = work / case.argv[case.argv.index("--out") + 1] / ".edge-kd.lock"
        deadline = time.time() + 120
        while not lock.exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
    r = _run(case.argv, work, env)
    seconds = time.perf_counter() - start
    if first is not None:
        first.wait(timeout=600)
    after = snapshot(work)
    # The scratch folder's name changes from run to run: show paths relative to it.
    lines = [ln.replace(f"{work}{os.sep}", "").replace(str(work), ".") for ln in r.stderr.splitlines() if ln.strip()]
    if not lines and case.expect == 1:  # a failed check: the verdict is the last line of the report on stdout
        lines = [ln.replace(f"{work}{os.sep}", "") for ln in r.stdout.splitlines() if ln.strip()][-1:]
    changed = sorted(k for k in before if k in after and after[k] != before[k])
    deleted = sorted(k for k in before if k not in after)
    created = sorted(k for k in after if k not in before)
    if first is not None:
        created = [k for k in created if not k.startswith("race/")]
    ok = (r.returncode == case.expect and len(lines) == 1 and "Traceback" not in r.stderr
          and not changed and not deleted and not created)
    return {"case": case.name, "issue_case": case.issue, "command": case.command,
            "argv": ["edge-kd", *case.argv], "expect": case.expect, "exit": r.returncode,
            "stderr_lines": len(lines), "first_line": lines[0] if lines else "",
            "changed": changed, "deleted": deleted, "created": created,
            "hash_before": hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12],
            "hash_after": hashlib.sha256(json.dumps(after, sort_keys=True).encode()).hexdigest()[:12],
            "seconds": round(seconds, 2), "note": case.note, "passed": ok}


def write_results(rows: list[dict], seconds: float) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    passed = sum(r["passed"] for r in rows)
    meta = {"cases": len(rows), "passed": passed, "seconds": round(seconds, 1), "python": platform.python_version(),
            "platform": f"{sys.platform}-{platform.machine()}", "date": time.strftime("%Y-%m-%d", time.gmtime())}
    (RESULTS / "reliability.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    md = ["# Reliability: hostile and careless inputs", "",
          f"{passed} of {len(rows)} cases pass ({meta['date']}, {meta['platform']}, {meta['seconds']} s). "
          "Produced by `benchmarks/reliability.py`: each case runs the real CLI in a scratch folder holding "
          "exported tiny models, profiles, data and a user's files.", "",
          "A case passes when the exit code is the expected one (2 bad input; 1 where a failed check is the "
          "point), stderr is exactly one line without a traceback, and no file in the folder was changed, "
          "deleted or created (`files` compares the sha256 of every file before and after; the two short "
          "hashes digest the whole folder). `issue` is the numbered case of issue 14 (`late`: an option "
          "that used to fail only after minutes of work).", "",
          "| # | case | issue | command | exit | first stderr line | files before -> after | pass |",
          "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        first = r["first_line"].replace("|", "\\|")
        if len(first) > 160:
            first = first[:157] + "..."
        files = f"`{r['hash_before']}` -> `{r['hash_after']}`"
        if r["changed"] or r["deleted"] or r["created"]:
            files += " " + "; ".join(f"{k}: {', '.join(v)}" for k, v in
                                     (("changed", r["changed"]), ("deleted", r["deleted"]), ("created", r["created"]))
                                     if v)
        else:
            files += " unchanged"
        verdict = "yes" if r["passed"] else f"**NO** ({r['stderr_lines']} lines)"
        md.append(f"| {i} | {r['case']} | {r['issue_case'] or '-'} | {r['command']} | {r['exit']} (want "
                  f"{r['expect']}) | {first} | {files} | {verdict} |")
    (RESULTS / "reliability.md").write_text("\n".join(md) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated commands to run (gate,bench,export,...)")
    parser.add_argument("--work", help="scratch folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--no-write", action="store_true", help="print, do not write benchmarks/results")
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="edge-kd-reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(work)]), "EDGE_KD_CACHE": str(work / "cache"),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    start = time.perf_counter()
    try:
        make_fixtures(work, env)
        selected = [c for c in cases() if not args.only or c.command in args.only.split(",")]
        rows = []
        for case in selected:
            row = run_case(case, work, env)
            rows.append(row)
            mark = "ok  " if row["passed"] else "FAIL"
            print(f"{mark} {row['exit']} {case.command:9s} {case.name}: {row['first_line'][:150]}", flush=True)
            if not row["passed"]:
                print(f"     lines={row['stderr_lines']} changed={row['changed']} deleted={row['deleted']} "
                      f"created={row['created']}", flush=True)
        seconds = time.perf_counter() - start
        if not args.no_write:
            write_results(rows, seconds)
        passed = sum(r["passed"] for r in rows)
        print(f"{passed} of {len(rows)} cases pass ({seconds:.0f} s)")
        return 0 if passed == len(rows) else 1
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
