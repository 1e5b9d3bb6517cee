"""Helpers shared by subcommand modules (light imports only)."""
from __future__ import annotations

import json
import sys
from typing import Any, Iterable, Sequence


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], file=None) -> None:
    """A plain aligned text table."""
    file = file or sys.stdout
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=file)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=file)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def add_target_argument(parser, *, required: bool = True, multiple: bool = False) -> None:
    kwargs: dict[str, Any] = {"required": required, "metavar": "NAME|PATH",
                              "help": "target profile: a shipped name (see `edge-kd targets list`) or a .toml path"}
    if multiple:
        kwargs.update(action="append", dest="targets")
    parser.add_argument("--target", **kwargs)


def join(items: Iterable[Any]) -> str:
    return ", ".join(str(i) for i in items)
