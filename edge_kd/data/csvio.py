"""CSV reading with one-line errors: missing file, empty file, a column that does not exist
(naming the ones that do), ragged rows."""
from __future__ import annotations

import csv
import gzip
import io
import os
import sys
from pathlib import Path
from typing import Sequence

from edge_kd.errors import InputError

# Support-ticket CSVs carry long free-text fields (responses); the default 128 KiB limit is too small.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def check_file(path: str | os.PathLike[str], what: str = "data file") -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: {what} does not exist")
    if not p.is_file():
        raise InputError(f"{p}: {what} is not a file")
    return p


def open_text(path: str | os.PathLike[str]) -> io.TextIOBase:
    """A CSV opened as text, gzip or plain (told apart by the gzip magic bytes, not the file name), with a
    UTF-8 byte-order mark dropped. Large transaction logs are read line by line, without unpacking."""
    path = Path(path)
    with path.open("rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open(newline="", encoding="utf-8-sig")


def read_csv(path: str | os.PathLike[str], *, delimiter: str = ",") -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file (UTF-8, an optional BOM is dropped; quoted multi-line fields work)."""
    p = check_file(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{p}: the file is empty (expected a header row)")
            header = [h.strip() for h in header]
            rows = []
            for line_no, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise InputError(f"{p}: row {line_no} has {len(row)} fields, the header has {len(header)}")
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise InputError(f"{p}: not a valid CSV file ({exc})") from None
    return header, rows


def column_index(header: Sequence[str], name: str, path: str | os.PathLike[str], role: str = "column") -> int:
    """Index of ``name`` in ``header``, or an InputError naming the columns that exist."""
    try:
        return list(header).index(name)
    except ValueError:
        shown = ", ".join(header[:40]) + (", ..." if len(header) > 40 else "")
        raise InputError(f"{path}: {role} {name!r} does not exist; columns are: {shown}") from None
