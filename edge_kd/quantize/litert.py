"""LiteRT static int8: PT2E through litert-torch, written by edge_kd.export.litert.export_tflite.

Two ways exist to get a full-integer .tflite from PyTorch today:

1. **PT2E in litert-torch** (``litert_torch.quantize.pt2e_quantizer.PT2EQuantizer`` +
   ``convert_pt2e`` + ``litert_torch.convert(..., quant_config=QuantConfig(pt2e_quantizer=...))``);
2. **fp32 conversion, then the AI Edge Quantizer** (``ai_edge_quantizer.Quantizer`` with the
   ``static_wi8_ai8`` recipe and its own min/max calibration over the interpreter's tensors).

edge_kd uses (1). Why, measured side by side by ``benchmarks/int8.py --litert-aeq`` (results in
benchmarks/results/int8.md; 2 shared x86 cores, one thread):

* accuracy: on MiniLM/banking77 PT2E with edge_kd ranges keeps fp32 accuracy (0.895 vs fp32 0.895,
  200 test rows) where the AI Edge Quantizer's min/max recipe loses 7 points (0.825); on
  EfficientNet-Lite0/grocery (300 test rows) PT2E scored 0.657 and AEQ 0.637 (fp32 0.637);
* latency: mixed -- on MiniLM the PT2E model ran faster (48.5 ms vs 80.2 ms), on EfficientNet AEQ's
  was a little faster (24.8 ms vs 26.7 ms); sizes were within 1%;
* one range implementation: PT2E takes the same RangeObserver as ExecuTorch (``percentile``,
  ``entropy``, ``mse`` mean the same thing on both torch targets) and per-layer float fallback is the
  same module filter; AEQ offers min/max ranges only.

The PT2E model's inputs and outputs are int8 tensors (scale/zero point in the flatbuffer): the app
quantizes its float input with them (AEQ keeps float I/O, its one practical advantage); edge_kd's
LiteRT runner does the same, so float samples are fed for accuracy checks.

PT2E leaves EMBEDDING_LOOKUP tables in float; :meth:`LiteRTBackend.build` then stores them as int8 (or
int4) per ``[quantization] embeddings`` with ai-edge-quantizer, scoped to the lookups
(:func:`edge_kd.quantize.embeddings.quantize_tflite_lookups`): one file, int8 compute and int8 tables.
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
        scheme = getattr(self.settings, "embeddings", "int8")
        pt2e_path = out_path if scheme == "float" else out_path.with_name(out_path.stem + ".pt2e.tflite")
        path = export_tflite(converted, example_inputs, pt2e_path,
                             quant_config=QuantConfig(pt2e_quantizer=calibrated.quantizer))
        if scheme != "float":
            from edge_kd.quantize.embeddings import quantize_tflite_lookups

            self.embedding_tables = quantize_tflite_lookups(pt2e_path, scheme, out_path)
            pt2e_path.unlink(missing_ok=True)
            path = out_path
        return [path], ranges

    def _graph_transform(self) -> Any:
        return None  # LiteRT's tables are quantized in the .tflite (build), not in the torch graph

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

