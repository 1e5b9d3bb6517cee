"""Export a PyTorch model to the target's runtime format and prove it still computes the same thing.

One exporter module per runtime (``executorch.py`` -> .pte, ``onnx.py`` -> .onnx + .ort, ``litert.py``
-> .tflite), named by the runtime's spec in ``edge_kd.runtimes.registry``; ``export_model`` asks the
registry for the target's runtime, reloads every file in its real runtime,
checks parity against PyTorch, and records the operator list and the per-tensor size breakdown.
Importing this package is light; torch and the converters load when an export runs.

    result = export_model(model, example_inputs, load_target("ort-mobile"), Path("build"))
    result.primary          # build/model.ort
    result.parity           # {"max_abs_error": 2e-6, "top1_agreement": 1.0, "n": 4, ...}
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_kd.errors import InputError
from edge_kd.pipeline.stage import Artifact

if TYPE_CHECKING:
    from edge_kd.targets import TargetProfile

#: How many random inputs (besides the example) the parity check uses when given none.
PARITY_RANDOM_SAMPLES = 3


@dataclass
class ExportResult:
    """Files written by ``export_model`` and what was checked about them."""

    artifacts: list[Artifact]
    primary: Path
    parity: dict[str, Any]
    tensors: list[dict[str, Any]]
    seconds: float
    ops: dict[str, Any] = field(default_factory=dict)
    runtime: str = ""
    runtime_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"primary": str(self.primary), "parity": self.parity, "seconds": self.seconds, "ops": self.ops,
                "runtime": self.runtime, "runtime_version": self.runtime_version,
                "artifacts": [{"path": str(a.path), "format": a.format, "role": a.role} for a in self.artifacts],
                "tensors": self.tensors}


def export_model(model: Any, example_inputs: tuple, target: "TargetProfile", out_dir: str | os.PathLike[str], *,
                 name: str = "model", check_parity: bool = True, parity_inputs: list[tuple] | None = None,
                 atol: float | None = None, input_names: list[str] | None = None) -> ExportResult:
    """Export ``model`` for ``target`` into ``out_dir`` and check it in the target's runtime.

    ``model``: nn.Module, ``torch.export.ExportedProgram`` or a PT2E-converted GraphModule. Writes
    ``<name>.pte`` (executorch), ``<name>.onnx`` + ``<name>.ort`` + ``<name>.required_operators.config``
    (onnxruntime) or ``<name>.tflite`` (litert). Every file is reloaded in its runtime and compared with
    PyTorch on ``parity_inputs`` (default: the example plus a few random inputs like it); an error above
    ``atol`` (default 1e-3 x the largest output magnitude, floor 1) raises InputError and leaves no
    file behind. A model that cannot be exported raises InputError naming the operator or problem.

    >>> from edge_kd.targets import load_target
    >>> from edge_kd.testing.tiny_models import tiny_cnn, TINY_SPECS
    >>> res = export_model(tiny_cnn(), TINY_SPECS["cnn"].example_inputs(),
    ...                    load_target("tflite-int8"), Path("out"))                # doctest: +SKIP
    >>> res.primary.name, res.parity["top1_agreement"]                              # doctest: +SKIP
    ('model.tflite', 1.0)
    """
    from edge_kd.export import parity as par
    from edge_kd.runtimes import open_runner, runtime_spec

    spec = runtime_spec(target.runtime.name)

    start = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a directory")
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"export name {name!r} must be a plain file stem like 'model'")
    example_inputs = tuple(example_inputs)
    reference_fn = par.torch_callable(model)
    try:  # a model that cannot run its own example input is a usage error, not an exporter bug
        par.reference_outputs(reference_fn, example_inputs)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"the model fails on the example inputs "
                         f"({', '.join(str(list(x.shape)) for x in example_inputs)}): {type(exc).__name__}: {first}") from None
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".tmp-export-", dir=out_dir))
    done = False
    try:
        exporter = spec.export_module()
        staged = exporter.export_formats(model, example_inputs, target.runtime.formats, stage, name, input_names)
        runnable = [a for a in staged if a.format in spec.formats]
        primary_staged = next((a for a in runnable if a.format == target.primary_format), runnable[-1])
        threads = target.runtime.threads
        parity: dict[str, Any] = {"checked": False}
        runners = {a.path: open_runner(a.path, threads=threads, runtime=spec.name) for a in runnable}
        if check_parity:
            samples = list(parity_inputs) if parity_inputs else [example_inputs, *par.variants(
                example_inputs, PARITY_RANDOM_SAMPLES)]
            reference = [par.reference_outputs(reference_fn, s) for s in samples]
            per_format = {}
            for artifact in runnable:
                runner = runners[artifact.path]
                try:
                    actual = [runner.run(list(s)) for s in samples]
                    result = par.compare(reference, actual)
                except (ValueError, InputError) as exc:
                    raise InputError(f"{name}.{artifact.format}: parity check could not run: {exc}") from None
                tol = atol if atol is not None else par.default_tolerance(result["max_abs_reference"])
                result["tolerance"] = tol
                per_format[artifact.format] = result
                if not result["max_abs_error"] <= tol:  # also catches NaN
                    agree = result["top1_agreement"]
                    raise InputError(
                        f"{name}.{artifact.format}: parity check failed in {runner.runtime}: max abs error "
                        f"{result['max_abs_error']:.3g} > tolerance {tol:.3g} over {result['n']} inputs"
                        + (f" (top-1 agreement {agree:.1%})" if agree is not None else "")
                        + "; no artifact written")
            worst = max(per_format.values(), key=lambda r: r["max_abs_error"])
            parity = {"checked": True, "max_abs_error": worst["max_abs_error"],
                      "top1_agreement": min((r["top1_agreement"] for r in per_format.values()
                                             if r["top1_agreement"] is not None), default=None),
                      "n": worst["n"], "tolerance": worst["tolerance"], "per_format": per_format}
        primary_runner = runners[primary_staged.path]
        ops = primary_runner.ops(target.ops.policy)
        tensors = primary_runner.tensors()
        if hasattr(exporter, "primary_tensors"):
            tensors = exporter.primary_tensors(primary_staged.path, tensors)
        runtime, runtime_version = primary_runner.runtime, primary_runner.runtime_version
        del runners, primary_runner
        # All checks passed: move the files into place (each rename is atomic).
        artifacts = []
        for artifact in staged:
            final = out_dir / artifact.path.name
            os.replace(artifact.path, final)
            is_primary = artifact is primary_staged
            artifacts.append(Artifact(final, artifact.format, "model" if is_primary else "export",
                                      {"tensors": tensors} if is_primary else {}))
        done = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not done and created:
            shutil.rmtree(out_dir, ignore_errors=True)  # we made it and it holds nothing of value
    primary = out_dir / primary_staged.path.name
    return ExportResult(artifacts=artifacts, primary=primary, parity=parity, tensors=tensors,
                        seconds=round(time.perf_counter() - start, 3), ops=ops, runtime=runtime,
                        runtime_version=runtime_version)


__all__ = ["ExportResult", "export_model"]
