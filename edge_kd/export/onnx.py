"""ONNX (torch.onnx.export, dynamo exporter) and the ONNX Runtime Mobile .ort format.

The .ort file is what an app with ORT Mobile ships; ``required_operators.config`` lists the operators
the model needs, which a reduced-operator ORT build takes (``--include_ops_by_config``). The same
conversion serves fp32 models and the int8 helper's QDQ models.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from edge_kd.errors import InputError
from edge_kd.export._common import call_converter, quiet_output
from edge_kd.pipeline.atomic import atomic_path
from edge_kd.pipeline.stage import Artifact


def export_onnx(model: Any, example_inputs: tuple, out_path: str | os.PathLike[str],
                input_names: Sequence[str] | None = None) -> Path:
    """Export a module (or ExportedProgram) to a single-file ``.onnx`` with fixed input shapes.

    >>> export_onnx(tiny_cnn(), (torch.rand(1, 3, 32, 32),), Path("out/model.onnx"), ["image"])  # doctest: +SKIP
    """
    import torch

    out_path = Path(out_path)
    if isinstance(model, torch.nn.Module) and not isinstance(model, torch.fx.GraphModule):
        model = model.eval()
    with atomic_path(out_path) as tmp:
        call_converter("ONNX", torch.onnx.export, model, tuple(example_inputs), str(tmp), dynamo=True,
                       external_data=False, input_names=list(input_names) if input_names else None,
                       optimize=True, verbose=False)
    return out_path


def _is_qdq(onnx_path: Path) -> bool:
    """Whether the model is in QDQ format (has QuantizeLinear/DequantizeLinear nodes)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node)


def _save_ort(onnx_path: Path, ort_out: Path, *, runtime_style: bool) -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.optimized_model_filepath = str(ort_out)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.save_model_format", "ORT")
    if runtime_style:
        so.add_session_config_entry("optimization.minimal_build_optimizations", "save")
    so.log_severity_level = 3
    try:
        ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"],
                             disabled_optimizers=["NchwcTransformer"])
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{onnx_path}: ONNX Runtime cannot convert it to .ort: {message}") from None


def convert_to_ort(onnx_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Convert an ``.onnx`` to ``<stem>.ort`` plus ``<stem>.required_operators.config`` in ``out_dir``.

    Follows onnxruntime.tools.convert_onnx_models_to_ort: all graph optimizations minus the x86-only
    NCHWc layout transformer (the target is an ARM phone), fixed optimization style: the fused kernels
    (QLinearConv, QLinearMatMul...) are in the file, so ORT Mobile runs exactly what was benchmarked.
    A QDQ model whose fixed-style graph would need an operator outside the ORT Mobile package
    (``edge_kd.runtimes.ops``) is saved in runtime style instead (QDQ groups kept, fusions replayed at
    load by builds that have the kernels). A full ONNX Runtime does not replay them, so such a file
    benchmarks unfused here: the int8 helper avoids it by quantizing Gemm as MatMul + Add.

    >>> convert_to_ort(Path("out/model.onnx"), Path("out"))     # doctest: +SKIP
    (PosixPath('out/model.ort'), PosixPath('out/model.required_operators.config'))
    """
    from onnxruntime.tools.ort_format_model import create_config_from_models

    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    if not onnx_path.is_file():
        raise InputError(f"{onnx_path}: no such ONNX file")
    ort_path = out_dir / f"{onnx_path.stem}.ort"
    config_path = out_dir / f"{onnx_path.stem}.required_operators.config"
    with atomic_path(ort_path) as tmp_ort:
        _save_ort(onnx_path, tmp_ort, runtime_style=False)
        if _is_qdq(onnx_path):
            from edge_kd.runtimes.onnxruntime import inspect_ort
            from edge_kd.runtimes.ops import violations

            if violations("ort-mobile-operators", "onnxruntime", inspect_ort(tmp_ort)["operators"]):
                _save_ort(onnx_path, tmp_ort, runtime_style=True)
        with atomic_path(config_path, suffix=".config") as tmp_config:
            with quiet_output():
                create_config_from_models([tmp_ort], tmp_config, enable_type_reduction=False)
            # The generator names the model it read (our temp file): name the shipped file instead.
            text = tmp_config.read_text().replace(str(tmp_ort), ort_path.name)
            tmp_config.write_text(text)
    return ort_path, config_path


def export_formats(model: Any, example_inputs: tuple, formats: Sequence[str], folder: Path, name: str,
                   input_names: list[str] | None = None) -> list[Artifact]:
    """The runtime registry's exporter entry: ``<name>.onnx``, and when asked the ``.ort`` converted from
    it plus its ``required_operators.config`` (role ``export``)."""
    onnx_path = export_onnx(model, example_inputs, folder / f"{name}.onnx", input_names)
    artifacts = [Artifact(onnx_path, "onnx")]
    if "ort" in formats:
        ort_path, config = convert_to_ort(onnx_path, folder)
        artifacts += [Artifact(ort_path, "ort"), Artifact(config, "ort-config", role="export")]
    return artifacts
