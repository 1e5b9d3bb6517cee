"""edge_kd: turn a large model into small, fast models that ship inside mobile and edge apps.

Public API. Importing this package is light (no torch, executorch, onnxruntime or LiteRT): names are
resolved lazily on first use, and the heavy backends are imported by the functions that use them.

>>> import edge_kd
>>> edge_kd.load_target("android-arm64-xnnpack").runtime.name
'executorch'
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access (PEP 562).
_LAZY = {
    "EdgeKDError": "edge_kd.errors", "InputError": "edge_kd.errors", "ConfigError": "edge_kd.errors",
    "BudgetError": "edge_kd.errors",
    "TargetProfile": "edge_kd.targets", "load_target": "edge_kd.targets", "list_targets": "edge_kd.targets",
    "Build": "edge_kd.pipeline.manifest", "read_manifest": "edge_kd.pipeline.manifest",
    "ModelSpec": "edge_kd.models.spec", "InputSpec": "edge_kd.models.spec",
    "load_recipe": "edge_kd.recipe",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edge_kd' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
