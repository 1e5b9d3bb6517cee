"""A model's ``float_modules`` stay float in every runtime's int8 artifact: the forecasting student's
multiply by the product's level works in units, and int8 of it rounds small sellers' levels and clips any
level above the calibrated maximum (December's best-sellers)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_kd.models.students.forecast import forecast_student
from edge_kd.quantize import quantize_model
from edge_kd.runtimes import open_runner
from edge_kd.targets import load_target


@pytest.mark.parametrize("target_name", ["android-arm64-xnnpack", "ort-mobile", "tflite-int8"])
def test_level_multiply_stays_float_beyond_the_calibrated_range(tmp_path, target_name):
    torch.manual_seed(0)
    model = forecast_student(num_features=6, hidden=16).eval()
    assert model.float_modules == ("to_units",)
    rng = np.random.default_rng(0)
    # Calibration levels 1..100 units; the check feeds 5 and 3,000.
    calibration = [(rng.normal(size=(1, 6)).astype(np.float32), rng.uniform(1, 100, (1, 1)).astype(np.float32))
                   for _ in range(64)]
    example = (torch.zeros(1, 6), torch.ones(1, 1))
    result = quantize_model(model, example, load_target(target_name), calibration, tmp_path, method="minmax",
                            ship="int8")
    assert result.report["float_modules"] == ["to_units"]
    runner = open_runner(result.primary)
    for level in (5.0, 3000.0):
        features = rng.normal(size=(1, 6)).astype(np.float32)
        want = float(model(torch.from_numpy(features), torch.tensor([[level]])).reshape(-1)[0])
        got = float(np.asarray(runner.run([features, np.array([[level]], np.float32)])[0]).reshape(-1)[0])
        # Only the MLP's multiple is int8 (a few per cent); int8 of the product would clip 3,000 units at
        # the calibrated ~100 x multiple and put 5 units on a grid of ~0.4-0.8.
        assert abs(got - want) <= 0.05 * abs(want) + 1e-3, (target_name, level, got, want)
