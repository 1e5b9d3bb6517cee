"""ExecuTorch / XNNPACK static int8: PT2E with the XNNPACK quantizer, lowered by edge_kd.export.

The XNNPACK quantizer's config decides which ops are quantized and how (weights int8 symmetric per
output channel in [-127, 127], activations int8 asymmetric per tensor); edge_kd replaces the
activation observer (its HistogramObserver) with :class:`~edge_kd.quantize.ranges.RangeObserver`, so the
range method is edge_kd's while the scheme stays the one XNNPACK's kernels expect, observes conv/linear +
ReLU6 after the clamp (:func:`~edge_kd.quantize.ranges.annotate_weighted_clamp`; the stock quantizer
gives a ReLU6 the convolution's pre-activation range) and quantizes a transformer's weighted ops only
(:func:`~edge_kd.quantize.sensitivity.is_transformer`).

Embedding tables are stored per ``[quantization] embeddings`` (int8 rows by default, int4 groups, or
float) by rewriting the lookups in the exported graph before annotation
(:func:`edge_kd.quantize.embeddings.quantize_embedding_lookups`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_kd.quantize.ranges import PT2ECalibration, make_quantizer, pt2e_config
from edge_kd.quantize.sensitivity import is_transformer


class ExecuTorchBackend:
    """PT2E + XNNPACK -> ``.pte`` (see :class:`edge_kd.quantize.onnxruntime.OrtBackend` for the interface)."""

    runtime = "executorch"
    extension = "pte"
    pt2e_backend = "xnnpack"

    def __init__(self, settings: Any):
        self.settings = settings
        #: What the last calibrate() did to the embedding tables (recorded in the quantize report).
        self.embedding_tables: list[dict[str, Any]] = []

    def _config(self, method: str | None) -> Any:
        return pt2e_config(self.pt2e_backend, per_channel=self.settings.weights == "per-channel-symmetric",
                           symmetric_activations=self.settings.activations == "per-tensor-symmetric",
                           method=method, percentile=self.settings.percentile)

    def export_fp32(self, model: Any, example_inputs: tuple, out_path: Path) -> list[Path]:
        from edge_kd.export.executorch import export_pte

        return [export_pte(model, example_inputs, out_path)]

    def _graph_transform(self) -> Any:
        from edge_kd.quantize.embeddings import lookup_transform

        return lookup_transform(getattr(self.settings, "embeddings", "int8"))

    def calibrate(self, model: Any, example_inputs: tuple, samples: Sequence[tuple[np.ndarray, ...]],
                  exclude: Sequence[str] = ()) -> PT2ECalibration:
        quantizer = make_quantizer(self.pt2e_backend, self._config("minmax"), exclude,
                                   weighted_only=is_transformer(model))
        calibrated = PT2ECalibration(model, example_inputs, quantizer, samples, self._graph_transform())
        self.embedding_tables = calibrated.transform_report or []
        return calibrated

    def build(self, calibrated: PT2ECalibration, method: str, example_inputs: tuple, out_path: Path
              ) -> tuple[list[Path], list[dict[str, Any]]]:
        from edge_kd.export.executorch import export_pte

        converted, ranges = calibrated.convert(method, percentile=self.settings.percentile)
        return [export_pte(converted, example_inputs, out_path)], ranges

    def default_int8(self, model: Any, example_inputs: tuple, samples: Sequence[tuple[np.ndarray, ...]],
                     out_path: Path) -> list[Path]:
        """The path an ExecuTorch user gets from the docs: XNNPACKQuantizer with
        ``get_symmetric_quantization_config()`` as is (per-tensor weights, HistogramObserver)."""
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                             get_symmetric_quantization_config)

        from edge_kd.export.executorch import export_pte

        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config())
        converted, _ = PT2ECalibration(model, example_inputs, quantizer, samples).convert(None)
        return [export_pte(converted, example_inputs, out_path)]

    @staticmethod
    def weight_dtypes(path: Path) -> dict[str, Any]:
        """Facts showing the weights are stored as int8 (a .pte stores XNNPACK's packed blobs, so the
        evidence is the size and the delegate's int8 tensor count)."""
        from edge_kd.runtimes import open_runner

        runner = open_runner(path)
        tensors = runner.tensors()
        return {"tensors": len(tensors), "int8_tensors": sum(1 for t in tensors if "int8" in str(t.get("dtype"))),
                "bytes": Path(path).stat().st_size}
