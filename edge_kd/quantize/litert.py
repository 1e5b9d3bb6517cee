"""LiteRT static int8: PT2E through litert-torch, written by edge_kd.export.litert.export_tflite.

Two ways exist to get a full-integer .tflite from PyTorch today:

1. **PT2E in litert-torch** (``litert_torch.quantize.pt2e_quantizer.PT2EQuantizer`` +
   ``convert_pt2e`` + ``litert_torch.convert(..., quant_config=QuantConfig(pt2e_quantizer=...))``);
2. **fp32 conversion, then the AI Edge Quantizer** (``ai_edge_quantizer.Quantizer`` with the
   ``static_wi8_ai8`` recipe and its own min/max calibration over the interpreter's tensors).

edge_kd uses (1). Why, measured in ``benchmarks/int8.py`` (``--litert-aeq`` adds the AEQ column):
PT2E is the path where edge_kd's range methods apply unchanged (the same RangeObserver as ExecuTorch,
so ``percentile``/``entropy``/``mse`` mean the same thing on both torch targets) and where per-layer
float fallback is a module-name filter on the same graph; the AI Edge Quantizer only offers min/max
ranges. The PT2E model's inputs and outputs are int8 tensors (scale/zero point in the flatbuffer): the
app quantizes its float input with them; :func:`quantized_io` wraps a runner so float samples can be
fed for accuracy checks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_kd.quantize.executorch import ExecuTorchBackend
from edge_kd.quantize.ranges import PT2ECalibration
from edge_kd.runtimes.litert import _args_index


class LiteRTBackend(ExecuTorchBackend):
    """PT2E (litert-torch quantizer) -> ``.tflite``."""

    runtime = "litert"
    extension = "tflite"
    pt2e_backend = "litert"

    def export_fp32(self, model: Any, example_inputs: tuple, out_path: Path) -> list[Path]:
        from edge_kd.export.litert import export_tflite

        return [export_tflite(model, example_inputs, out_path)]

    def build(self, calibrated: PT2ECalibration, method: str, example_inputs: tuple, out_path: Path
              ) -> tuple[list[Path], list[dict[str, Any]]]:
        from litert_torch.quantize.quant_config import QuantConfig

        from edge_kd.export.litert import export_tflite

        converted, ranges = calibrated.convert(method, percentile=self.settings.percentile, fold_quantize=False)
        path = export_tflite(converted, example_inputs, out_path,
                             quant_config=QuantConfig(pt2e_quantizer=calibrated.quantizer))
        return [path], ranges

    def default_int8(self, model: Any, example_inputs: tuple, samples: Sequence[tuple[np.ndarray, ...]],
                     out_path: Path) -> list[Path]:
        """litert-torch's documented PT2E recipe: ``get_symmetric_quantization_config()`` as is."""
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
        from litert_torch.quantize.quant_config import QuantConfig

        from edge_kd.export.litert import export_tflite

        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config())
        converted, _ = PT2ECalibration(model, example_inputs, quantizer, samples).convert(None, fold_quantize=False)
        return [export_tflite(converted, example_inputs, out_path, quant_config=QuantConfig(pt2e_quantizer=quantizer))]

    def aeq_int8(self, fp32_tflite: Path, samples: Sequence[tuple[np.ndarray, ...]], out_path: Path) -> list[Path]:
        """The AI Edge Quantizer alternative (static int8 weights and activations, min/max calibration)."""
        from ai_edge_quantizer import quantizer as aeq
        from ai_edge_quantizer import recipe

        from edge_kd.export.litert import export_tflite

        q = aeq.Quantizer(str(fp32_tflite), recipe.static_wi8_ai8())
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(fp32_tflite))
        signature = next(iter(interp.get_signature_list()))
        details = interp.get_signature_runner(signature).get_input_details()
        names = sorted(details, key=_args_index)
        dtypes = [np.dtype(details[n]["dtype"]) for n in names]
        # litert-torch stores int64 token ids as int32: cast the samples the way the app feeds them.
        calibration = {signature: [{n: np.asarray(a).astype(d) for n, a, d in zip(names, s, dtypes)}
                                   for s in samples]}
        result = q.quantize(q.calibrate(calibration, num_threads=1))
        return [export_tflite(bytes(result.quantized_model), None, out_path)]

    @staticmethod
    def weight_dtypes(path: Path) -> dict[str, Any]:
        from edge_kd.runtimes import open_runner

        tensors = open_runner(path).tensors()
        big = [t for t in tensors if int(t.get("bytes", 0)) >= 64]
        return {"tensors": len(tensors), "int8_tensors": sum(1 for t in big if str(t.get("dtype")) == "int8"),
                "float32_tensors": sum(1 for t in big if str(t.get("dtype")) == "float32"),
                "bytes": Path(path).stat().st_size}


class QuantizedIORunner:
    """Feeds float arrays to a model with int8 inputs (quantized with the input's scale/zero point)
    and returns dequantized float outputs: what the app's pre/post-processing does."""

    def __init__(self, path: Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        from edge_kd.runtimes import open_runner

        self.inner = open_runner(path, threads=threads)
        interp = Interpreter(model_path=str(path), num_threads=threads)
        by_name = {d["name"]: d for d in interp.get_input_details()}
        signatures = interp.get_signature_list()
        self._in_q: list[tuple[float, int] | None] = []
        self._out_q: list[tuple[float, int] | None] = []
        key = next(iter(signatures)) if len(signatures) == 1 else None
        if key is not None:
            sig = interp.get_signature_runner(key)
            ins, outs = sig.get_input_details(), sig.get_output_details()
            for name in self.inner.input_specs:
                d = ins.get(name[0]) or by_name.get(name[0])
                self._in_q.append(_qp(d))
            for name in self.inner.output_names:
                self._out_q.append(_qp(outs.get(name)))
        self.input_specs = self.inner.input_specs

    def run(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        fed = []
        for k, (x, (_name, _shape, dtype)) in enumerate(zip(inputs, self.inner.input_specs)):
            x = np.asarray(x)
            q = self._in_q[k] if k < len(self._in_q) else None
            if np.dtype(dtype) == np.int8 and x.dtype.kind == "f" and q is not None:
                scale, zp = q
                x = np.clip(np.round(x / scale) + zp, -128, 127).astype(np.int8)
            fed.append(x)
        outs = self.inner.run(fed)
        result = []
        for k, y in enumerate(outs):
            q = self._out_q[k] if k < len(self._out_q) else None
            if y.dtype == np.int8 and q is not None:
                y = (y.astype(np.float32) - q[1]) * q[0]
            result.append(y)
        return result


def _qp(detail: dict[str, Any] | None) -> tuple[float, int] | None:
    if not detail:
        return None
    scale, zp = detail.get("quantization", (0.0, 0))
    return (float(scale), int(zp)) if scale else None


def quantized_io(path: Path, threads: int = 1) -> Any:
    """A runner for ``path`` that takes and returns float arrays whatever its I/O dtype."""
    return QuantizedIORunner(path, threads)
