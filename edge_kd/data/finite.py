"""NaN/inf checks at data loading: a non-finite number in the data must stop the run before any
training, not surface as ROC-AUC 0.5 after the teacher learned from it, or as a perfect accuracy
computed from NaN logits."""
from __future__ import annotations

from typing import Any

from edge_kd.errors import InputError


def check_finite(array: Any, *, source: str, what: str) -> None:
    """InputError naming ``source``, ``what`` and the first bad row when a float array holds NaN/inf.

    Integer and boolean arrays cannot hold either and pass without a scan.
    """
    import numpy as np

    a = np.asarray(array)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.complexfloating)):
        return
    bad = ~np.isfinite(a)
    if not bad.any():
        return
    count = int(bad.sum())
    first = int(np.argwhere(bad)[0][0]) if a.ndim else 0
    kinds = []
    if np.isnan(a).any():
        kinds.append("NaN")
    if np.isinf(a).any():
        kinds.append("inf")
    raise InputError(f"{source}: {what} holds {count} {'/'.join(kinds)} value(s), first in row {first}; "
                     "remove or fill them before training, calibrating or evaluating")
