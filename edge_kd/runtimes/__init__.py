"""One runner per runtime behind one interface (``Runner``): load an artifact, check inputs, run,
list its operators and stored tensors. The runtime is picked by file extension from the runtime
registry (``edge_kd.runtimes.registry``: one spec per runtime).

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
from edge_kd.runtimes.ops import MOBILE_PACKAGE_OPS, OP_POLICIES, default_policy, ops_record, violations
from edge_kd.runtimes.registry import RUNTIMES, RuntimeSpec, register_runtime, runtime_for, runtime_spec

if TYPE_CHECKING:
    from edge_kd.runtimes.base import Runner


def open_runner(path: str | os.PathLike[str], *, threads: int = 1, runtime: str | None = None) -> "Runner":
    """Load ``path`` in its runtime (.pte ExecuTorch, .onnx/.ort ONNX Runtime, .tflite LiteRT).

    A missing, corrupt, truncated or wrong-format file raises InputError naming the file. ``runtime``
    (optional) is the runtime the caller's target expects; a file for another runtime is refused.

    >>> runner = open_runner("build/model.tflite", threads=1)          # doctest: +SKIP
    >>> runner.input_specs                                              # doctest: +SKIP
    [('args_0', (1, 3, 224, 224), dtype('float32'))]
    """
    path = Path(path)
    name = runtime_for(path, runtime)
    if runtime is not None and runtime != name:
        raise InputError(f"{path}: a {path.suffix} file runs in {name}, but the target's runtime is {runtime}")
    if not path.is_file():
        raise InputError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    if threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    runner = runtime_spec(name).runner_class()(path, threads)
    runner.runtime = name  # a runner class may serve several registered runtimes (flavours)
    return runner


__all__ = ["MOBILE_PACKAGE_OPS", "OP_POLICIES", "RUNTIMES", "RuntimeSpec", "default_policy", "open_runner",
           "ops_record", "register_runtime", "runtime_for", "runtime_spec", "violations"]
