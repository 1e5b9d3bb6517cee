"""Atomic writes: a file appears complete under its final name or not at all.

Everything edge_kd writes into a build directory or over a user's path goes through here: write to a
temporary file in the same folder, fsync, then ``os.replace`` (atomic on POSIX). An interrupted run
leaves at most a ``.tmp-*`` file, never a half-written artifact under a real name.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success it is renamed onto ``final``.

    Use it for writers that insist on a path (exporters, runtimes' converters)::

        with atomic_path(out / "model.onnx") as tmp:
            torch.onnx.export(..., tmp)

    ``suffix`` keeps the extension some writers check (defaults to the final file's suffix).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{final.name}-", suffix=suffix if suffix is not None else final.suffix,
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; artifacts should get the permissions any other file of the user gets.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        if tmp.is_dir():
            raise IsADirectoryError(f"{tmp} became a directory; use atomic_dir")
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise OSError(f"writer produced no data for {final}")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(final: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def atomic_write_text(final: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(final, text.encode("utf-8"))


def atomic_write_json(final: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(final, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Like atomic_path for a directory: build it in a temporary sibling, then swap it in."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".old-{final.name}-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
