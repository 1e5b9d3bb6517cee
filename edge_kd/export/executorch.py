"""ExecuTorch .pte: torch.export -> to_edge_transform_and_lower(XNNPACK) -> to_executorch.

One code path for fp32 and int8: an int8 model arrives as the GraphModule that torchao's
``convert_pt2e`` returns (or an already exported program) and is lowered the same way; XNNPACK picks
up the quantize/dequantize pairs and runs int8 kernels.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from edge_kd.export._common import call_converter
from edge_kd.pipeline.atomic import atomic_path
from edge_kd.pipeline.stage import Artifact


def to_exported_program(model: Any, example_inputs: tuple) -> Any:
    """An ``ExportedProgram`` from a module (or the program itself when already exported)."""
    import torch

    if isinstance(model, torch.export.ExportedProgram):
        return model
    if isinstance(model, torch.nn.Module):
        model = model.eval() if not isinstance(model, torch.fx.GraphModule) else model
        return torch.export.export(model, tuple(example_inputs), strict=False)
    raise TypeError(f"expected an nn.Module, GraphModule or ExportedProgram, got {type(model).__name__}")


def lower_to_xnnpack(model: Any, example_inputs: tuple) -> Any:
    """The ExecuTorch program manager after XNNPACK lowering (``.to_executorch()`` not yet applied)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program = to_exported_program(model, example_inputs)
    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])


#: XNNPACK stores constants under the sha256 of their bytes; export_pte remembers which parameter each
#: key came from (by output path) so the size breakdown can name them. Filled per export.
CONSTANT_NAMES: dict[str, dict[str, Any]] = {}


def _tensor_bytes(t: Any) -> bytes:
    import torch

    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def constant_names(manager: Any) -> dict[str, str]:
    """sha256-of-bytes -> parameter name, for the constants of every XNNPACK partition.

    XNNPACK stores conv weights channels-last, so 4-D tensors are hashed in that layout too. Weights
    XNNPACK rewrites (batch-norm folded into a conv) have new bytes; they keep their hash as name.
    """
    import hashlib

    import torch

    names: dict[str, str] = {}
    found: dict[str, list[str]] = {}
    programs = [manager.exported_program()]  # its own constants feed the portable kernels
    programs += [getattr(m, "original_module", None) for m in programs[0].graph_module.modules()]
    for original in programs:
        if original is None:
            continue
        tensors = {**dict(original.state_dict), **dict(getattr(original, "constants", {}) or {})}
        for fqn, tensor in tensors.items():
            if not isinstance(tensor, torch.Tensor) or tensor.numel() == 0:
                continue
            layouts = [tensor]
            if tensor.dim() == 4:
                layouts.append(tensor.permute(0, 2, 3, 1))
            for layout in layouts:
                found.setdefault(hashlib.sha256(_tensor_bytes(layout)).hexdigest(), []).append(fqn)
    # Equal bytes (fresh LayerNorm biases are all zeros) cannot be told apart: say so in the name.
    for key, fqns in found.items():
        unique = list(dict.fromkeys(fqns))
        names[key] = unique[0] if len(unique) == 1 else f"{unique[0]} (or {len(unique) - 1} other(s) with equal bytes)"
    return names


def parameter_shapes(manager: Any) -> dict[str, tuple[int, ...]]:
    programs = [manager.exported_program()]
    programs += [getattr(m, "original_module", None) for m in programs[0].graph_module.modules()]
    return {fqn: tuple(t.shape) for p in programs if p is not None for fqn, t in dict(p.state_dict).items()}


def name_tensors(tensors: list[dict[str, Any]], names: dict[str, Any]) -> list[dict[str, Any]]:
    """Give .pte tensors (keyed by sha256) their parameter names; see ``constant_names``."""
    by_hash: dict[str, str] = names.get("by_hash", {})
    shapes: dict[str, tuple[int, ...]] = names.get("shapes", {})
    used = {by_hash[t["key"]] for t in tensors if t.get("key") in by_hash}
    out = []
    for t in tensors:
        name = by_hash.get(t.get("key", ""))
        if name is None and len(t["shape"]) == 4:
            o, h, w, i = t["shape"]
            candidates = [fqn for fqn, shape in shapes.items() if shape == (o, i, h, w) and fqn not in used]
            if len(candidates) == 1:
                name = f"{candidates[0]} (folded)"
                used.add(candidates[0])
        out.append({**t, "name": name or t["name"]})
    return out


def export_pte(model_or_program: Any, example_inputs: tuple, out_path: str | os.PathLike[str]) -> Path:
    """Export to an ExecuTorch ``.pte`` with every supported op delegated to XNNPACK.

    ``model_or_program``: an ``nn.Module``, an ``ExportedProgram``, or the GraphModule returned by
    ``torchao.quantization.pt2e.convert_pt2e`` (int8). The file is written atomically; an export
    failure raises InputError naming the operator or problem.

    >>> export_pte(tiny_cnn(), (torch.rand(1, 3, 32, 32),), Path("out/model.pte"))   # doctest: +SKIP
    """
    out_path = Path(out_path)

    def convert() -> bytes:
        manager = lower_to_xnnpack(model_or_program, example_inputs)
        try:
            CONSTANT_NAMES[str(out_path.resolve())] = {"by_hash": constant_names(manager),
                                                       "shapes": parameter_shapes(manager)}
        except Exception:  # names are a nicety for the size breakdown; never fail an export on them
            CONSTANT_NAMES.pop(str(out_path.resolve()), None)
        return manager.to_executorch().buffer

    buffer = call_converter("ExecuTorch .pte", convert)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(buffer)
    return out_path


def export_formats(model: Any, example_inputs: tuple, formats: Sequence[str], folder: Path, name: str,
                   input_names: list[str] | None = None) -> list[Artifact]:
    """The runtime registry's exporter entry: ``<name>.pte`` in ``folder``."""
    return [Artifact(export_pte(model, example_inputs, folder / f"{name}.pte"), "pte")]


def primary_tensors(path: Path, tensors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored tensors of a just-exported .pte, named after the model's parameters."""
    return name_tensors(tensors, CONSTANT_NAMES.pop(str(Path(path).resolve()), {}))
