"""edge_kd: turn a large model into small, fast models that ship inside mobile and edge apps.

Public API. Importing this package is light (no torch, executorch, onnxruntime or LiteRT); the heavy
backends are imported by the functions that use them.

>>> import edge_kd
>>> edge_kd.load_target("android-arm64-xnnpack").runtime.name
'executorch'
"""
from __future__ import annotations

__version__ = "0.1.0"

from edge_kd.errors import BudgetError, ConfigError, EdgeKDError, InputError
from edge_kd.pipeline import Build, read_manifest
from edge_kd.targets import TargetProfile, list_targets, load_target

__all__ = [
    "__version__", "Build", "BudgetError", "ConfigError", "EdgeKDError", "InputError", "TargetProfile",
    "list_targets", "load_target", "read_manifest",
]
