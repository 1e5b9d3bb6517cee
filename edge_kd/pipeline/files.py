"""Facts about files that every report needs: bytes, gzip bytes (the app-store download), sha256."""
from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def gzip_size(path: str | os.PathLike[str], level: int = 9) -> int:
    """Bytes of the file gzip-compressed: a fair stand-in for its compressed download size."""
    data = Path(path).read_bytes()
    return len(gzip.compress(data, compresslevel=level, mtime=0))


def file_facts(path: str | os.PathLike[str]) -> dict[str, int | str]:
    path = Path(path)
    return {"bytes": path.stat().st_size, "gzip_bytes": gzip_size(path), "sha256": sha256_file(path)}
