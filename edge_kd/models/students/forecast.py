"""Demand-forecasting student: an MLP on the standardised lag/price/calendar features that predicts
the week's quantity as a multiple of the product's recent level (the second input).

    model = forecast_student(num_features=20, hidden=64)
    quantity = model(torch.zeros(1, 20), torch.full((1, 1), 35.0))      # [1, 1] units

Predicting a multiple of the level keeps the network's own output near 1 for products selling 5 or
5,000 a week: int8 activations then resolve small and large sellers alike, and only the last
multiply works in units; that multiply stays float in every int8 artifact (``float_modules``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edge_kd.models.spec import InputSpec
from edge_kd.models.students.base import FAMILIES, StudentFamily, knob_values


class ToUnits(nn.Module):
    """multiple x level: the one op in units (kept float by every int8 scheme, see ``float_modules``)."""

    def forward(self, multiple: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return multiple * level


class ForecastStudent(nn.Module):
    #: Kept in float by edge_kd.quantize: int8 of the level (1..700+ units, one scale) and of the product
    #: would round a 5-unit seller's level to 4.2 or 7.0 and clip December's best-sellers at the
    #: calibrated maximum (measured: output SQNR 15 dB, test WAPE +2.4 pt on XNNPACK).
    float_modules = ("to_units",)

    def __init__(self, num_features: int, hidden: int = 64, layers: int = 2):
        super().__init__()
        mlp: list[nn.Module] = []
        width = int(num_features)
        for _ in range(int(layers)):
            mlp += [nn.Linear(width, int(hidden)), nn.ReLU()]
            width = int(hidden)
        mlp.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*mlp)
        self.to_units = ToUnits()
        with torch.no_grad():  # start at "same as the level": the naive forecast, not 0
            self.mlp[-1].weight.mul_(0.1)
            self.mlp[-1].bias.fill_(1.0)

    def forward(self, features: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return self.to_units(self.mlp(features), level)


def forecast_student(num_features: int, hidden: int = 64, layers: int = 2) -> ForecastStudent:
    """Factory used by ModelSpec (``edge_kd.models.students.forecast:forecast_student``)."""
    return ForecastStudent(num_features, hidden, layers)


def _inputs(value: Any, kwargs: dict[str, Any]) -> tuple[InputSpec, ...]:
    return (InputSpec("features", (1, int(kwargs["num_features"])), "float32", -2.0, 2.0),
            InputSpec("level", (1, 1), "float32", 1.0, 100.0))


@FAMILIES.register("forecast_mlp")
def forecast_family(num_features: int, *, knob: str = "hidden", low: int | None = None, high: int | None = None,
                    step: int | None = None, layers: int = 2) -> StudentFamily:
    """MLP forecaster; knob ``hidden`` (8..1024 by 8)."""
    from edge_kd.errors import InputError

    if knob != "hidden":
        raise InputError(f"forecast_mlp student: the knob is 'hidden', got {knob!r}")
    kwargs = {"num_features": int(num_features), "layers": int(layers)}
    return StudentFamily("forecast_mlp", "edge_kd.models.students.forecast:forecast_student", "hidden",
                         knob_values(low or 8, high or 1024, step or 8), kwargs, input_fn=_inputs)
