"""Which of several artifacts is faster, measured so that machine noise cannot decide it.

Two artifacts timed one after the other on a shared machine see different loads: a 20% "speed-up"
between two separate benchmark runs is often noise. :func:`interleaved_latency` loads every candidate
in ONE process pinned to one core and times them in alternating rounds (a few runs of A, then of B,
then of C, with the order rotated each round), so a burst of load hits every candidate alike. Each
round gives one median per candidate; :func:`slower_beyond_noise` compares two candidates round by
round (paired ratios) and calls one slower only when it lost by more than the noise margin in at
least three rounds out of four.

The comparison half of this module imports only the standard library: the release gate re-checks the
recorded rounds with it without importing any runtime.

    rounds = interleaved_latency({"fp32": Path("m.fp32.ort"), "int8": Path("m.int8.ort")}, inputs=(x,))
    slower, ratio = slower_beyond_noise(rounds["int8"]["rounds_ms"], rounds["fp32"]["rounds_ms"])
"""
from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

#: A candidate must be slower by more than this fraction (in 3 of 4 interleaved rounds) to count as slower.
NOISE_MARGIN = 0.05
#: Share of rounds a candidate must lose (beyond the margin) to be called slower.
LOSING_SHARE = 0.75
ROUNDS = 15
#: Each round times a candidate for about this long (at least MIN_RUNS runs): sub-millisecond models
#: get many runs per round so that timer resolution and one-off hiccups average out.
ROUND_MS = 20.0
MIN_RUNS, MAX_RUNS = 3, 200


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default), without numpy."""
    v = sorted(values)
    if not v:
        return math.nan
    pos = (len(v) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def slower_beyond_noise(a_rounds_ms: Sequence[float], b_rounds_ms: Sequence[float], *,
                        margin: float = NOISE_MARGIN) -> tuple[bool, float]:
    """(A is slower than B beyond noise, median ratio A/B) from per-round medians of one interleaved run.

    Rounds are paired (round i of A ran right beside round i of B): A is slower when A/B exceeds
    ``1 + margin`` in at least :data:`LOSING_SHARE` of the rounds, i.e. the lower quartile of the
    ratios is above ``1 + margin``.

    >>> slower_beyond_noise([2.0, 2.1, 1.9, 2.0], [1.0, 1.1, 1.0, 0.9])
    (True, 2.0)
    >>> slower_beyond_noise([1.02, 0.98, 1.03, 1.0], [1.0, 1.0, 1.0, 1.0])[0]
    False
    """
    pairs = [(a, b) for a, b in zip(a_rounds_ms, b_rounds_ms) if a > 0 and b > 0]
    if not pairs:
        return False, math.nan
    ratios = [a / b for a, b in pairs]
    median = round(statistics.median(ratios), 4)
    return _quantile(ratios, 1.0 - LOSING_SHARE) > 1.0 + margin, median


def interleaved_latency(paths: Mapping[str, str | os.PathLike[str]], *, inputs: Sequence[Any] | None = None,
                        threads: int = 1, rounds: int = ROUNDS, warmup_runs: int = 5, pin_core: bool = True,
                        round_ms: float = ROUND_MS) -> dict[str, dict[str, Any]]:
    """Time every artifact in ``paths`` (name -> file) in alternating rounds in this process.

    Returns ``{name: {"p50_ms", "rounds_ms" (one median per round), "runs", "runs_per_round"}}`` plus
    a ``"_meta"`` entry (rounds, threads, pinned core). ``inputs``: one array per model input (random
    arrays of the model's input shapes when omitted; latency barely depends on the values).
    """
    import numpy as np

    from edge_kd.bench import pick_core
    from edge_kd.runtimes import open_runner

    if not paths:
        raise ValueError("no artifact to time")
    runners = {name: open_runner(path, threads=threads) for name, path in paths.items()}
    feeds = {}
    for name, runner in runners.items():
        if inputs is None:
            rng = np.random.default_rng(0)
            arrays = [rng.random(shape).astype(dtype) if np.dtype(dtype).kind == "f"
                      else rng.integers(0, 2, shape).astype(dtype) for _, shape, dtype in runner.input_specs]
        else:
            arrays = list(inputs)
        feeds[name] = runner.check_inputs(arrays)
    core = pick_core() if pin_core else None
    previous = None
    if core is not None:
        try:  # pins this thread only; restored below (the caller's other threads keep their cores)
            previous = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {core})
        except OSError:
            core = previous = None
    clock = time.perf_counter
    try:
        per_round: dict[str, int] = {}
        for name, runner in runners.items():
            for _ in range(max(warmup_runs, 1)):
                runner._run(feeds[name])
            t = clock()
            runner._run(feeds[name])
            one = max((clock() - t) * 1e3, 1e-3)
            per_round[name] = int(min(MAX_RUNS, max(MIN_RUNS, math.ceil(round_ms / one))))
        names = list(runners)
        times: dict[str, list[float]] = {n: [] for n in names}
        medians: dict[str, list[float]] = {n: [] for n in names}
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
            for name in order:
                runner, feed, this = runners[name], feeds[name], []
                for _ in range(per_round[name]):
                    t = clock()
                    runner._run(feed)
                    this.append((clock() - t) * 1e3)
                times[name] += this
                medians[name].append(round(statistics.median(this), 5))
    finally:
        if previous is not None:
            os.sched_setaffinity(0, previous)
    out: dict[str, dict[str, Any]] = {
        n: {"p50_ms": round(statistics.median(times[n]), 5), "rounds_ms": medians[n], "runs": len(times[n]),
            "runs_per_round": per_round[n]} for n in names}
    out["_meta"] = {"method": "interleaved", "rounds": rounds, "threads": threads, "pinned_core": core,
                    "noise_margin": NOISE_MARGIN, "losing_share": LOSING_SHARE}
    return out
