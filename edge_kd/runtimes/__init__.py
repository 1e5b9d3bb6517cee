"""One runner per runtime behind one interface (``Runner``): load an artifact, check inputs, run,
list its operators and stored tensors. The runtime is picked by file extension.

Importing this package is light; a runtime is imported when a runner for it is opened.

    runner = open_runner(Path("build/model.pte"), threads=1)
    outputs = runner.run([image])            # numpy in, numpy out
    runner.ops("xnnpack-full-delegation")    # {"operators", "delegated", "violations", ...}
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from edge_kd.errors import InputError
from edge_kd.runtimes.ops import DEFAULT_POLICY, MOBILE_PACKAGE_OPS, ops_record, violations

if TYPE_CHECKING:
    from edge_kd.runtimes.base import Runner

#: File extension -> (runtime name, module, runner class).
RUNNERS: dict[str, tuple[str, str, str]] = {
    ".pte": ("executorch", "edge_kd.runtimes.executorch", "ExecuTorchRunner"),
    ".onnx": ("onnxruntime", "edge_kd.runtimes.onnxruntime", "OrtRunner"),
    ".ort": ("onnxruntime", "edge_kd.runtimes.onnxruntime", "OrtRunner"),
    ".tflite": ("litert", "edge_kd.runtimes.litert", "LiteRTRunner"),
}


def runtime_for(path: str | os.PathLike[str]) -> str:
    """The runtime that runs a file, from its extension (InputError for an unknown one)."""
    suffix = Path(path).suffix.lower()
    if suffix not in RUNNERS:
        raise InputError(f"{path}: unknown artifact format {suffix or '(no extension)'!r}; "
                         f"known: {', '.join(RUNNERS)}")
    return RUNNERS[suffix][0]


def open_runner(path: str | os.PathLike[str], *, threads: int = 1, runtime: str | None = None) -> "Runner":
    """Load ``path`` in its runtime (.pte ExecuTorch, .onnx/.ort ONNX Runtime, .tflite LiteRT).

    A missing, corrupt, truncated or wrong-format file raises InputError naming the file. ``runtime``
    (optional) is the runtime the caller's target expects; a file for another runtime is refused.

    >>> runner = open_runner("build/model.tflite", threads=1)          # doctest: +SKIP
    >>> runner.input_specs                                              # doctest: +SKIP
    [('args_0', (1, 3, 224, 224), dtype('float32'))]
    """
    import importlib

    path = Path(path)
    name = runtime_for(path)
    if runtime is not None and runtime != name:
        raise InputError(f"{path}: a {path.suffix} file runs in {name}, but the target's runtime is {runtime}")
    if not path.is_file():
        raise InputError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    if threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    _, module_name, cls_name = RUNNERS[path.suffix.lower()]
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(path, threads)


__all__ = ["DEFAULT_POLICY", "MOBILE_PACKAGE_OPS", "RUNNERS", "open_runner", "ops_record", "runtime_for", "violations"]
