"""Realistic build directories for gate and report tests.

``write_build`` lays out what the pipeline writes: the model file of the target's format made of
its tensors' bytes (int8 weights, int32 biases) plus a header, a preprocessing asset, an
intermediate export for ONNX Runtime, stage records, and build.json written by the real
``edge_kd.pipeline.Build`` (so bytes, gzip bytes and sha256 are those of the files). Figures default
to a build that passes every check; tests then break one thing at a time.

Other test folders and benchmarks/gate.py load this file by path (``load_fixtures()`` there).
"""
from __future__ import annotations

import copy
import json
import random
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from edge_kd.pipeline import Build
from edge_kd.targets import load_target

DEFAULT_BUDGETS = {"artifact_size": "64KiB", "download_size": "56KiB", "latency_p90": "12ms", "accuracy_drop": "1pt"}
_ITEMSIZE = {"int8": 1, "uint8": 1, "int32": 4, "float32": 4, "float16": 2}
_MODEL_FILE = {"executorch": [("model.pte", "pte")], "onnxruntime": [("export/model.onnx", "onnx"),
                                                                      ("model.ort", "ort")],
               "litert": [("model.tflite", "tflite")]}


def tensor_plan(width: int = 8, classes: int = 43) -> list[dict[str, Any]]:
    """A small int8 CNN's tensors: 6 convolutions and a classifier (14 tensors)."""
    chans = [3, width, width, 2 * width, 2 * width, 4 * width, 4 * width]
    plan = []
    for i in range(6):
        plan.append({"name": f"features.{i}.conv.weight", "dtype": "int8", "shape": [chans[i + 1], chans[i], 3, 3]})
        plan.append({"name": f"features.{i}.conv.bias", "dtype": "int32", "shape": [chans[i + 1]]})
    plan.append({"name": "classifier.weight", "dtype": "int8", "shape": [classes, chans[-1]]})
    plan.append({"name": "classifier.bias", "dtype": "int32", "shape": [classes]})
    for t in plan:
        n = 1
        for d in t["shape"]:
            n *= d
        t["bytes"] = n * _ITEMSIZE[t["dtype"]]
    return plan


def _model_bytes(tensors: list[dict[str, Any]], rng: random.Random, header: int) -> bytes:
    # A flatbuffer-like header (compressible) followed by quantized weights (nearly incompressible).
    head = (b"EDGEKD-FIXTURE-PROGRAM\x00" * (header // 23 + 1))[:header]
    body = b"".join(rng.randbytes(t["bytes"]) for t in tensors)
    return head + body


def write_build(root: Path, *, target: str = "android-arm64-xnnpack", budgets: dict[str, str] | None = None,
                width: int = 8, header_bytes: int = 2048, metric: float = 0.912, teacher_metric: float = 0.918,
                metric_name: str = "accuracy", latency: tuple[float, float, float] = (8.2, 9.5, 11.3),
                teacher_latency: tuple[float, float, float] = (31.0, 34.5, 40.2),
                violations: list[Any] | None = None, with_tensors: bool = True,
                with_preprocessing: bool = True, recipe_name: str = "fixture", seed: int = 0) -> Path:
    """Write a complete build directory (all checks pass with the defaults) and return it."""
    rng = random.Random(seed)
    profile = load_target(target).to_dict()
    profile["budgets"] = {**profile["budgets"], **(budgets or DEFAULT_BUDGETS)}
    build = Build.create(root, target=profile, recipe={"name": recipe_name})
    tensors = tensor_plan(width)
    runtime = profile["runtime"]["name"]
    with build.stage("distill", cache_key=f"d{seed}") as rec:
        rec["details"] = {"epochs": 3}
    with build.stage("quantize", cache_key=f"q{seed}"):
        pass
    with build.stage("export", cache_key=f"e{seed}"):
        for rel, fmt in _MODEL_FILE[runtime]:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_model_bytes(tensors, rng, header_bytes))
            role = "export" if fmt == "onnx" else "model"
            extra = {"tensors": tensors} if with_tensors and role == "model" else {}
            build.add_artifact(path, role=role, format=fmt, **extra)
        if with_preprocessing:
            labels = root / "labels.txt"
            labels.write_text("\n".join(f"class_{i:02d}" for i in range(43)) + "\n")
            build.add_artifact(labels, role="preprocessing", format="txt")
    with build.stage("bench", cache_key=f"b{seed}"):
        p50, p90, p99 = latency
        build.update_metrics(latency_ms={"p50": p50, "p90": p90, "p99": p99, "mean": round((p50 + p90) / 2, 3)},
                             load_ms=3.1, peak_rss_mb=41.5)
        t50, t90, t99 = teacher_latency
        build.update_metrics(section="teacher",
                             latency_ms={"p50": t50, "p90": t90, "p99": t99, "mean": round((t50 + t90) / 2, 3)})
    with build.stage("evaluate", cache_key=f"v{seed}"):
        build.update_metrics(task_metric={"name": metric_name, "value": metric})
        build.update_metrics(section="teacher", task_metric={"name": metric_name, "value": teacher_metric})
    with build.stage("ops", cache_key=f"o{seed}"):
        policy = profile["ops"]["policy"]
        ops = {"policy": policy, "operators": {"conv2d": 6, "relu": 6, "linear": 1, "mean": 1},
               "delegated": 14 if policy == "xnnpack-full-delegation" else 0, "not_delegated": [],
               "violations": list(violations or [])}
        build.update_metrics(ops=ops)
    return root


def edit_manifest(build_dir: Path, mutate: Callable[[dict[str, Any]], Any]) -> Path:
    """Let ``mutate`` change build.json's dict in place (its return value is ignored) and save it."""
    path = build_dir / "build.json"
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data, indent=2))
    return build_dir


def baseline_of(build_dir: Path, dest: Path, mutate: Callable[[dict[str, Any]], Any] | None = None) -> Path:
    """Only the build.json of an earlier release (as CI downloads it), optionally altered in place."""
    data = copy.deepcopy(json.loads((build_dir / "build.json").read_text()))
    if mutate is not None:
        mutate(data)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "build.json").write_text(json.dumps(data, indent=2))
    return dest / "build.json"


@pytest.fixture(scope="session")
def _build_templates(tmp_path_factory) -> dict[str, Path]:
    return {"_dir": tmp_path_factory.mktemp("gate-build-templates")}


@pytest.fixture
def make_build(tmp_path: Path, _build_templates) -> Callable[..., Path]:
    """``make_build(name=None, **write_build_kwargs) -> Path``: a fresh copy of a build directory.

    Each distinct set of arguments is built once per session (every stage fsyncs build.json) and
    copied per test, so tests may edit their copy freely.
    """
    counter = iter(range(10_000))

    def factory(name: str | None = None, **kwargs: Any) -> Path:
        key = repr(sorted(kwargs.items()))
        if key not in _build_templates:
            _build_templates[key] = write_build(_build_templates["_dir"] / f"t{len(_build_templates)}", **kwargs)
        dest = tmp_path / (name or f"build{next(counter)}")
        shutil.copytree(_build_templates[key], dest)
        return dest

    return factory


@pytest.fixture
def good_build(make_build) -> Path:
    return make_build("good")


@pytest.fixture
def fx() -> SimpleNamespace:
    """The helpers of this file, for tests (conftest modules are not importable by name)."""
    return SimpleNamespace(write_build=write_build, edit_manifest=edit_manifest, baseline_of=baseline_of,
                           tensor_plan=tensor_plan, DEFAULT_BUDGETS=DEFAULT_BUDGETS)
