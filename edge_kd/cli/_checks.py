"""Option checks every subcommand runs before any work starts (light imports only).

A typo in ``--max-drop`` or ``--device cuda`` on a machine without a GPU must fail in a second
with the option's name, not after minutes of calibration or teacher training.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Iterable

from edge_kd.errors import InputError


def finite_float(text: str) -> float:
    """argparse ``type=`` for a finite number (``float('nan')`` would otherwise pass every check)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def check_drop(text: str | None, option: str) -> None:
    """An accuracy-drop option ("0.5pt", "2%"), parsed as the profile's budgets are."""
    if text is None:
        return
    from edge_kd.units import parse_accuracy_drop

    try:
        parse_accuracy_drop(text)
    except ValueError as exc:
        raise InputError(f"{option} {text!r}: {exc}") from None


def check_ms(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    from edge_kd.units import parse_ms

    try:
        value = parse_ms(text)
    except ValueError as exc:
        raise InputError(f"{option} {text!r}: {exc}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{option} {text!r}: must be a positive duration such as '12ms'")
    return value


def check_device(device: str | None) -> None:
    """``--device cuda`` needs a CUDA GPU now, not after the data and the teacher are loaded."""
    if not device or not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA GPU is available on this machine (use --device cpu or auto)")


def existing_inputs(paths: Iterable[str | os.PathLike[str] | None]) -> list[Path]:
    """The paths among ``paths`` that name files on disk (inputs the output guard protects)."""
    out = []
    for p in paths:
        if p is None:
            continue
        text = str(p)
        if ":" in text and not Path(text).exists():  # npz:PATH, csv:PATH?opts
            text = text.split(":", 1)[1].split("?", 1)[0]
        if text and Path(text).exists():
            out.append(Path(text))
    return out
