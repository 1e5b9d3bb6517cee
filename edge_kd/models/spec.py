"""How a user hands over a network without pickles: a ``module:factory`` reference, keyword
arguments, a weights file (safetensors, or a state dict loaded with ``weights_only=True``) and an
input spec (names, shapes, dtypes; text models take token-id tensors).

A ModelSpec is plain JSON, so a student or a pruned model "reloads without unpickling code":
its architecture is the factory and kwargs, its weights a safetensors file.

    spec = ModelSpec.parse("edge_kd.testing.tiny_models:tiny_cnn", weights="w.safetensors",
                           inputs="image:1x3x32x32:float32")
    model = spec.build()
"""
from __future__ import annotations

import importlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from edge_kd.errors import InputError

#: Largest example input (elements); 2**28 float32 is 1 GiB, far above any on-device model's input.
MAX_INPUT_ELEMENTS = 2**28
DTYPES = ("float32", "float16", "int64", "int32", "uint8", "bool")


@dataclass(frozen=True)
class InputSpec:
    """One model input. Integer inputs (token ids, categorical codes) draw examples from [low, high)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InputError(f"input {self.name!r}: unknown dtype {self.dtype!r}; known: {', '.join(DTYPES)}")
        if not self.shape or any((not isinstance(d, int)) or d < 1 for d in self.shape):
            raise InputError(f"input {self.name!r}: shape must be positive integers, got {self.shape}")
        if not self.name or not self.name.strip():
            raise InputError(f"input spec: the input name is empty (expected NAME:SHAPE:DTYPE)")
        elements = math.prod(self.shape)
        if elements > MAX_INPUT_ELEMENTS:
            raise InputError(f"input {self.name!r}: shape {'x'.join(map(str, self.shape))} has {elements:,} "
                             f"elements; an example input is limited to {MAX_INPUT_ELEMENTS:,}")

    @classmethod
    def parse(cls, text: str) -> "InputSpec":
        """``name:1x3x224x224:float32`` or ``input_ids:1x32:int64:30522`` (the last field is the
        exclusive upper bound of integer values, e.g. the vocabulary size)."""
        parts = text.split(":")
        if len(parts) not in (3, 4):
            raise InputError(f"input spec {text!r}: expected NAME:SHAPE:DTYPE[:HIGH], e.g. image:1x3x224x224:float32")
        name, shape_text, dtype = parts[:3]
        if not re.fullmatch(r"\d+(x\d+)*", shape_text):
            raise InputError(f"input spec {text!r}: shape must look like 1x3x224x224")
        if len(parts) == 4:
            try:
                high = float(parts[3])
            except ValueError:
                raise InputError(f"input spec {text!r}: HIGH must be a number (the exclusive upper bound of "
                                 f"values), got {parts[3]!r}") from None
            if not math.isfinite(high) or high <= 0:
                raise InputError(f"input spec {text!r}: HIGH must be a finite number > 0, got {parts[3]!r}")
        else:
            high = 1.0 if dtype.startswith("float") else 2.0
        return cls(name, tuple(int(d) for d in shape_text.split("x")), dtype, 0.0, high)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InputSpec":
        return cls(d["name"], tuple(d["shape"]), d.get("dtype", "float32"), d.get("low", 0.0), d.get("high", 1.0))

    def example(self, batch: int | None = None, seed: int = 0):
        """A random example tensor (uniform floats, or integers in [low, high))."""
        import torch

        shape = (batch, *self.shape[1:]) if batch is not None else self.shape
        gen = torch.Generator().manual_seed(seed)
        torch_dtype = getattr(torch, self.dtype)
        if self.dtype.startswith("float"):
            t = torch.rand(shape, generator=gen) * (self.high - self.low) + self.low
            return t.to(torch_dtype)
        if self.dtype == "bool":
            return torch.randint(0, 2, shape, generator=gen).bool()
        return torch.randint(int(self.low), max(int(self.high), int(self.low) + 1), shape, generator=gen, dtype=torch_dtype)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def import_object(ref: str) -> Any:
    """Import ``package.module:attr`` (or ``package.module.attr``) with a clear error."""
    module_name, sep, attr = ref.partition(":")
    if not sep:
        module_name, _, attr = ref.rpartition(".")
    if not module_name or not attr:
        raise InputError(f"{ref!r}: expected a reference like 'my_package.models:build_model'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"{ref!r}: cannot import module {module_name!r}: {exc}") from None
    except SyntaxError as exc:
        raise InputError(f"{ref!r}: module {module_name!r} has a syntax error: {exc.filename}:{exc.lineno}: "
                         f"{exc.msg}") from None
    except SystemExit as exc:  # the user's module calls sys.exit() on import: never exit 0 for it
        raise InputError(f"{ref!r}: importing module {module_name!r} called sys.exit({exc.code!r})") from None
    except Exception as exc:  # the user's code failed on import: their error, shown in one line
        raise InputError(f"{ref!r}: importing module {module_name!r} failed: {_first_line(exc)}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InputError(f"{ref!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load weights safely: safetensors, or a torch file with ``weights_only=True`` (never a pickle of code)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: weights file does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise InputError(f"{path}: not a valid safetensors file ({exc})") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: cannot load weights safely with weights_only=True ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a state dict (a mapping of tensors), got {type(obj).__name__}")
    return obj


def save_state_dict(model_or_state: Any, path: str | os.PathLike[str]) -> Path:
    """Save weights as safetensors, atomically (shared tensors are cloned so safetensors accepts them)."""
    import torch
    from safetensors.torch import save_file

    from edge_kd.pipeline.atomic import atomic_path

    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else model_or_state
    tensors = {k: v.detach().contiguous().clone() for k, v in state.items() if isinstance(v, torch.Tensor)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    return Path(path)


@dataclass(frozen=True)
class ModelSpec:
    """A network as data: factory reference, its kwargs, optional weights, and the inputs it takes."""

    factory: str
    inputs: tuple[InputSpec, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None

    @classmethod
    def parse(cls, factory: str, *, inputs: str | Sequence[str], weights: str | None = None,
              kwargs: dict[str, Any] | None = None) -> "ModelSpec":
        items = inputs.split(",") if isinstance(inputs, str) else list(inputs)
        if not items or not items[0]:
            raise InputError("an input spec is required, e.g. --input image:1x3x224x224:float32")
        return cls(factory, tuple(InputSpec.parse(s.strip()) for s in items), dict(kwargs or {}), weights)

    def build(self, *, load_weights: bool = True):
        """Instantiate the model in eval mode, weights loaded with strict key checking."""
        factory = import_object(self.factory)
        if not callable(factory):
            raise InputError(f"{self.factory!r} is not callable")
        try:
            model = factory(**self.kwargs)
        except SystemExit as exc:
            raise InputError(f"{self.factory}(**{self.kwargs}) called sys.exit({exc.code!r}) instead of returning "
                             "a model") from None
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # the user's factory, not edge_kd, failed: one line, exit 2
            raise InputError(f"{self.factory}(**{self.kwargs}) failed: {_first_line(exc)}") from None
        import torch

        if not isinstance(model, torch.nn.Module):
            raise InputError(f"{self.factory}(**{self.kwargs}) returned {type(model).__name__}, not a "
                             "torch.nn.Module")
        if load_weights and self.weights:
            state = load_state_dict(self.weights)
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                first = str(exc).splitlines()[0:3]
                raise InputError(f"{self.weights}: weights do not fit {self.factory}: {' '.join(first)}") from None
        return model.eval()

    def example_inputs(self, batch: int | None = None, seed: int = 0) -> tuple:
        return tuple(spec.example(batch, seed + i) for i, spec in enumerate(self.inputs))

    def to_dict(self) -> dict[str, Any]:
        return {"factory": self.factory, "kwargs": self.kwargs, "weights": self.weights,
                "inputs": [i.to_dict() for i in self.inputs]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, base_dir: Path | None = None) -> "ModelSpec":
        weights = d.get("weights")
        if weights and base_dir is not None and not Path(weights).is_absolute():
            weights = str(base_dir / weights)
        return cls(d["factory"], tuple(InputSpec.from_dict(i) for i in d["inputs"]), dict(d.get("kwargs") or {}), weights)

    def save(self, path: str | os.PathLike[str]) -> Path:
        from edge_kd.pipeline.atomic import atomic_write_json

        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "ModelSpec":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: bad JSON or invalid UTF-8
            raise InputError(f"{path}: cannot read model spec: {exc}") from None
        try:
            return cls.from_dict(data, base_dir=path.parent)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise InputError(f"{path}: not a model spec (expected factory, inputs[, kwargs, weights]): "
                             f"{type(exc).__name__}: {exc}") from None
