"""The quantize stage holds candidates to the gate's line: within ``accuracy_drop`` of the teacher (when the
teacher's metric on the same rows is given), not only of the fp32 student whose own slack int8 could use up."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edge_kd.quantize import quantize_model
from edge_kd.targets import load_target


def _task(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    x, y = _task(256, 0)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    return model.eval()


def _fixed_latency(paths, inputs=None, threads=1):
    # Injected: int8 is the fastest, so only the accuracy budget can stop it.
    speed = {"fp32": 1.0, "int8": 0.5}
    return {name: {"p50_ms": speed.get(name, 0.8), "rounds_ms": [speed.get(name, 0.8)] * 8} for name in paths}


def test_teacher_reference_tightens_the_budget_and_is_recorded(tmp_path):
    model, target = _model(), load_target("ort-mobile")
    calib = [(row[None],) for row in _task(64, 1)[0]]
    vx, vy = _task(120, 2)
    evals = [((row[None],), label) for row, label in zip(vx, vy)]
    plain = quantize_model(model, (torch.from_numpy(vx[:1]),), target, calib, tmp_path / "a", method="minmax",
                           eval_samples=evals, latency_fn=_fixed_latency)
    acc = plain.report["accuracy"]
    assert acc["budget_reference"] == "fp32" and acc["teacher_metric"] is None
    assert plain.shipped == "int8", plain.report["selection"]["reason"]

    # A teacher 30 pt better than the fp32 student on these rows: no candidate is within 1 pt of it, so the
    # best metric among those that fit the size budget ships, and the report says the line was the teacher's.
    teacher = min(1.0, acc["fp32"] + 0.3)
    tight = quantize_model(model, (torch.from_numpy(vx[:1]),), target, calib, tmp_path / "b", method="minmax",
                           eval_samples=evals, latency_fn=_fixed_latency, reference_metric=teacher)
    acc = tight.report["accuracy"]
    assert acc["budget_reference"] == "teacher" and acc["teacher_metric"] == teacher
    assert abs(acc["min_allowed"] - (teacher - 0.01)) < 1e-9
    assert tight.report["selection"]["reason"].startswith("no candidate meets every budget")

    # A teacher below the fp32 student: the fp32 line is the stricter one and stays.
    loose = quantize_model(model, (torch.from_numpy(vx[:1]),), target, calib, tmp_path / "c", method="minmax",
                           eval_samples=evals, latency_fn=_fixed_latency, reference_metric=acc["fp32"] - 0.2)
    assert loose.report["accuracy"]["budget_reference"] == "fp32" and loose.shipped == "int8"
