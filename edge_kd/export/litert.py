"""LiteRT .tflite via litert_torch.convert(...).export(...).

The int8 helper either passes ``quant_config`` (litert_torch's PT2E-based quantizer) or post-processes
with ai-edge-quantizer and hands the finished flatbuffer (bytes or a path) to ``export_tflite``, which
then only validates and writes it atomically.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from edge_kd.errors import InputError
from edge_kd.export._common import call_converter
from edge_kd.pipeline.atomic import atomic_path
from edge_kd.pipeline.stage import Artifact


def export_tflite(model: Any, example_inputs: tuple | None, out_path: str | os.PathLike[str], *,
                  quant_config: Any = None) -> Path:
    """Write a ``.tflite``: convert a module, or store a converted flatbuffer (bytes or .tflite path).

    >>> export_tflite(tiny_cnn(), (torch.rand(1, 3, 32, 32),), Path("out/model.tflite"))   # doctest: +SKIP
    """
    out_path = Path(out_path)
    if isinstance(model, (bytes, bytearray, memoryview)):
        return _write_flatbuffer(bytes(model), out_path, "the given bytes")
    if isinstance(model, (str, os.PathLike)):
        src = Path(model)
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise InputError(f"{src}: cannot read the .tflite flatbuffer: {exc.strerror}") from None
        return _write_flatbuffer(data, out_path, str(src))
    import torch

    if isinstance(model, torch.export.ExportedProgram):
        model = model.module()
    elif isinstance(model, torch.nn.Module) and not isinstance(model, torch.fx.GraphModule):
        model = model.eval()
    def convert(tmp: Path) -> None:
        import litert_torch

        edge_model = litert_torch.convert(model, tuple(example_inputs or ()), quant_config=quant_config)
        edge_model.export(str(tmp))

    with atomic_path(out_path) as tmp:
        call_converter("LiteRT .tflite", convert, tmp)
    return out_path


def _write_flatbuffer(data: bytes, out_path: Path, source: str) -> Path:
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise InputError(f"{source}: not a LiteRT .tflite flatbuffer (no 'TFL3' identifier)")
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(data)
    return out_path


def export_formats(model: Any, example_inputs: tuple, formats: Sequence[str], folder: Path, name: str,
                   input_names: list[str] | None = None) -> list[Artifact]:
    """The runtime registry's exporter entry: ``<name>.tflite`` in ``folder``."""
    return [Artifact(export_tflite(model, example_inputs, folder / f"{name}.tflite"), "tflite")]
