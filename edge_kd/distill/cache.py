"""Teacher outputs computed once and cached on disk as memory-mapped ``.npy`` files.

The teacher is the expensive part of distillation (a transformer over every training row, every
epoch). Its outputs over a data set are computed once, written with ``numpy.lib.format.open_memmap``
(rows filled batch by batch, so the array never has to fit in RAM twice) and renamed into place
atomically; re-runs, resumed runs and every size candidate of a sizing search read them back with
``mmap_mode="r"``. The cache key is a hash of the teacher's weights and of the data, so a changed
checkpoint or a changed data file can never reuse stale outputs.

    cache = TeacherCache("~/.cache/edge_kd/teacher")
    key = cache.key(weights_fingerprint(teacher), dataset.fingerprint(), "logits")
    logits = cache.get_or_compute(key, lambda: teacher_batches(teacher, batches), n_rows=len(dataset))
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from edge_kd.errors import InputError
from edge_kd.pipeline.atomic import atomic_path, atomic_write_json


def weights_fingerprint(model: Any) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes and bytes), in key order."""
    import torch

    h = hashlib.sha256()
    h.update(type(model).__qualname__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        if not isinstance(tensor, torch.Tensor):
            continue
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def arrays_fingerprint(*arrays: np.ndarray) -> str:
    """sha256 over arrays' dtypes, shapes and bytes (or strings, for object arrays of text)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.asarray(a)
        h.update(f"{a.dtype}|{a.shape}|".encode())
        if a.dtype == object:
            for item in a.ravel():
                h.update(str(item).encode("utf-8"))
                h.update(b"\x00")
        else:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


class TeacherCache:
    """A folder of ``<key>.npy`` arrays plus ``<key>.json`` metadata."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser()

    @staticmethod
    def key(*parts: str) -> str:
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npy"

    def has(self, key: str) -> bool:
        return self.path(key).is_file() and (self.root / f"{key}.json").is_file()

    def load(self, key: str) -> np.ndarray:
        try:
            return np.load(self.path(key), mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.path(key)}: corrupt teacher-output cache entry ({exc}); delete it") from None

    def get_or_compute(self, key: str, batches: Callable[[], Iterable[np.ndarray]], *, n_rows: int,
                       meta: dict[str, Any] | None = None) -> np.ndarray:
        """The cached array for ``key``, or fill it from ``batches()`` (arrays of rows, in order).

        The metadata file is written last, so an interrupted fill is never mistaken for a complete one.
        """
        if self.has(key):
            arr = self.load(key)
            if arr.shape[0] == n_rows:
                return arr
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(key)
        with atomic_path(final, suffix=".npy") as tmp:
            out = None
            row = 0
            for batch in batches():
                batch = np.asarray(batch, dtype=np.float32)
                if out is None:
                    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_rows, *batch.shape[1:]))
                if row + len(batch) > n_rows:
                    raise InputError(f"teacher produced more than the {n_rows} expected rows")
                out[row:row + len(batch)] = batch
                row += len(batch)
            if out is None or row != n_rows:
                raise InputError(f"teacher produced {row} rows for a data set of {n_rows}")
            out.flush()
            del out
        atomic_write_json(self.root / f"{key}.json", {"rows": n_rows, **(meta or {})})
        return self.load(key)


def teacher_batches(teacher: Any, inputs: tuple[np.ndarray, ...], *, batch_size: int = 64,
                    device: str = "cpu", output: Callable[[Any], Any] | None = None) -> Iterator[np.ndarray]:
    """Run an ``nn.Module`` teacher in eval mode without gradients over array inputs, batch by batch.

    ``output`` picks the tensor to cache from what the teacher returns (default: the output itself,
    or ``.logits`` / the first element of a tuple).
    """
    import torch

    teacher.eval()
    n = len(inputs[0])
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            batch = [torch.as_tensor(np.asarray(a[start:start + batch_size])).to(device) for a in inputs]
            out = teacher(*batch)
            if output is not None:
                out = output(out)
            elif hasattr(out, "logits"):
                out = out.logits
            elif isinstance(out, (tuple, list)):
                out = out[0]
            yield out.detach().float().cpu().numpy()
