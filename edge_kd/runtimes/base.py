"""The one interface every runtime's runner implements, and the input checks they share."""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge_kd.errors import InputError
from edge_kd.runtimes.ops import default_policy, ops_record

InputSpecs = list[tuple[str, tuple[int, ...], np.dtype]]


def check_magic(path: Path, offset: int, magic: bytes, what: str) -> bytes:
    """Read the file and check a format's identifier; InputError naming the file otherwise."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a {what} file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) < offset + len(magic) + 8 or data[offset:offset + len(magic)] != magic:
        raise InputError(f"{path}: not a {what} file (missing the {magic.decode(errors='replace')!r} "
                         f"identifier; wrong format, corrupt or truncated)")
    return data


class Runner(abc.ABC):
    """A loaded artifact in its runtime: check inputs, run, list operators and tensors.

    >>> runner = open_runner(Path("model.tflite"), threads=1)            # doctest: +SKIP
    >>> [out] = runner.run([np.zeros((1, 3, 32, 32), np.float32)])       # doctest: +SKIP
    """

    runtime: str = ""
    runtime_version: str = ""

    def __init__(self, path: Path, threads: int = 1):
        self.path = Path(path)
        self.threads = threads
        self.input_specs: InputSpecs = []
        self.output_names: list[str] = []
        #: (name, shape, dtype) of each output as the file declares it (before any dequantization).
        self.output_specs: InputSpecs = []
        #: (scale, zero_point) of int8/uint8 inputs and outputs, by tensor name, where the file stores them.
        self.io_quantization: dict[str, tuple[float, int]] = {}

    # ---- running ---------------------------------------------------------------------------
    def run(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        """Run once on batch inputs in the model's input order; returns numpy outputs."""
        return self._run(self.check_inputs(inputs))

    @abc.abstractmethod
    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Run on already checked inputs (hot path of the benchmark loop)."""

    def check_inputs(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        """Arrays matching ``input_specs`` exactly (lossless integer casts allowed: LiteRT takes int32 ids)."""
        if isinstance(inputs, np.ndarray) or not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        if len(inputs) != len(self.input_specs):
            expected = ", ".join(f"{n}{list(s)}" for n, s, _ in self.input_specs)
            raise InputError(f"{self.path}: model takes {len(self.input_specs)} input(s) ({expected}), "
                             f"got {len(inputs)}")
        checked = []
        for value, (name, shape, dtype) in zip(inputs, self.input_specs):
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().numpy()
            array = np.asarray(value)
            if tuple(array.shape) != tuple(shape):
                raise InputError(f"{self.path}: input {name!r} expects shape {list(shape)} {np.dtype(dtype).name}, "
                                 f"got shape {list(array.shape)}")
            if array.dtype != dtype:
                array = self._cast(name, array, np.dtype(dtype))
            checked.append(np.ascontiguousarray(array))
        return checked

    def _cast(self, name: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
        if array.dtype.kind in "iu" and dtype.kind in "iu":
            info = np.iinfo(dtype)
            if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
                return array.astype(dtype)
        raise InputError(f"{self.path}: input {name!r} expects dtype {dtype.name} shape "
                         f"{list(next(s for n, s, _ in self.input_specs if n == name))}, got {array.dtype.name}")

    # ---- inspection ------------------------------------------------------------------------
    def ops(self, policy: str | None = None) -> dict[str, Any]:
        """Operator record for the gate: ``{policy, operators, delegated, not_delegated, violations}``.

        ``policy`` defaults to the runtime's own (its spec's ``op_policy`` in ``edge_kd.runtimes.registry``).
        """
        operators, delegated, not_delegated, extra = self._operators()
        return ops_record(policy or default_policy(self.runtime), self.runtime, operators,
                          delegated=delegated, not_delegated=not_delegated, **extra)

    @abc.abstractmethod
    def _operators(self) -> tuple[dict[str, int], int | None, int | None, dict[str, Any]]:
        """(op counts, delegated, not delegated, extra fields)."""

    @abc.abstractmethod
    def tensors(self) -> list[dict[str, Any]]:
        """Stored constant tensors, largest first: ``{name, bytes, dtype, shape}``."""

    def io_contract(self) -> dict[str, Any]:
        """The artifact's I/O as the loaded file declares it: ``{inputs, outputs}``, each a list of
        ``{name, dtype, shape}`` plus ``quantization {scale, zero_point}`` for quantized tensors. This is
        what an app must feed (see :mod:`edge_kd.bundle.contract`)."""
        def entry(name: str, shape: tuple[int, ...], dtype: Any) -> dict[str, Any]:
            d: dict[str, Any] = {"name": name, "dtype": np.dtype(dtype).name, "shape": [int(x) for x in shape]}
            q = self.io_quantization.get(name)
            if q is not None:
                d["quantization"] = {"scale": float(q[0]), "zero_point": int(q[1])}
            return d

        return {"inputs": [entry(*s) for s in self.input_specs], "outputs": [entry(*s) for s in self.output_specs]}

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "runtime_version": self.runtime_version, "threads": self.threads,
                "inputs": [{"name": n, "shape": list(s), "dtype": np.dtype(d).name} for n, s, d in self.input_specs]}


def sort_tensors(tensors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(tensors, key=lambda t: (-int(t["bytes"]), str(t["name"])))


def load_error(path: Path, what: str, exc: BaseException) -> InputError:
    """One line for a runtime that refused a file (the runtime's own message, first line only)."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if len(message) > 300:
        message = message[:300] + "..."
    return InputError(f"{path}: {what} could not load it (corrupt, truncated or not a {what} model): {message}")
