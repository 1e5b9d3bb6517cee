"""Which artifact ships (edge_kd.quantize.selection) and the noise-robust comparison it rests on
(edge_kd.bench.compare), with measured latencies injected: no runtime needed."""
from __future__ import annotations

from pathlib import Path

import pytest

from edge_kd.bench.compare import slower_beyond_noise
from edge_kd.quantize.selection import Budgets, Candidate, choose, selection_record

BUDGETS = Budgets(artifact_size=100_000, download_size=90_000, min_metric=0.89)


def cand(name: str, nbytes: int, p50: float, *, metric: float = 0.9, jitter: float = 0.04,
         violations: list[str] | None = None) -> Candidate:
    # Per-round medians of one interleaved run: +-jitter around p50, the same pattern for everyone
    # (a burst of machine load hits every candidate of a round alike).
    pattern = [1.0, 1.0 + jitter, 1.0 - jitter, 1.0 + jitter / 2, 1.0, 1.0 - jitter / 2, 1.0, 1.0 + jitter]
    return Candidate(name, name, [Path(f"m.{name}.ort")], Path(f"m.{name}.ort"), nbytes, int(nbytes * 0.9),
                     metric=metric, violations=list(violations or []), p50_ms=p50,
                     rounds_ms=[round(p50 * k, 5) for k in pattern])


def test_slower_beyond_noise_needs_consistent_losses():
    assert slower_beyond_noise([2.0] * 8, [1.0] * 8) == (True, 2.0)
    # 3% slower: inside the 5% margin
    assert not slower_beyond_noise([1.03] * 8, [1.0] * 8)[0]
    # one huge outlier round does not make a candidate slower
    assert not slower_beyond_noise([1.0, 1.0, 9.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0] * 8)[0]
    # slower in only half of the rounds: noise
    assert not slower_beyond_noise([1.2, 1.0, 1.2, 1.0, 1.2, 1.0, 1.2, 1.0], [1.0] * 8)[0]
    assert slower_beyond_noise([], []) [0] is False


def test_fastest_within_budget_picks_fp32_when_int8_is_slower():
    cands = [cand("fp32", 60_000, 0.017), cand("int8", 20_000, 0.090), cand("int8-dynamic", 25_000, 0.030)]
    shipped, why = choose(cands, "fastest-within-budget", BUDGETS)
    assert shipped.name == "fp32" and "fastest" in why
    int8 = cands[1]
    assert int8.reason.startswith("slower") and "5.29x" in int8.reason
    record = selection_record(cands, shipped, "fastest-within-budget", why, BUDGETS, {"rounds": 8})
    assert record["shipped"] == "fp32"
    assert [c["shipped"] for c in record["candidates"]] == [True, False, False]
    fields = {"bytes", "gzip_bytes", "metric", "p50_ms", "rounds_ms", "reason", "within_budget"}
    assert fields <= set(record["candidates"][0])


def test_int8_ships_when_faster_and_the_smaller_wins_a_tie():
    shipped, _ = choose([cand("fp32", 60_000, 10.0), cand("int8", 20_000, 4.0)], "fastest-within-budget", BUDGETS)
    assert shipped.name == "int8"
    # 2% apart: equally fast within noise, so the smaller file ships although it is not the fastest
    cands = [cand("fp32", 60_000, 1.00), cand("int8", 20_000, 1.02)]
    shipped, why = choose(cands, "fastest-within-budget", BUDGETS)
    assert shipped.name == "int8" and "noise margin" in why and "fp32" in why


def test_budgets_exclude_candidates():
    # fp32 is fastest but over the size budget (with the bundle's other files), int8 fails accuracy,
    # the dynamic scheme violates the op policy: the remaining one ships although slower.
    budgets = Budgets(artifact_size=50_000, download_size=90_000, min_metric=0.89, extra_bytes=5_000)
    cands = [cand("fp32", 48_000, 1.0), cand("int8", 12_000, 0.5, metric=0.80),
             cand("int8-dynamic", 15_000, 0.4, violations=["DynamicQuantizeMatMul"]), cand("other", 20_000, 2.0)]
    shipped, _ = choose(cands, "fastest-within-budget", budgets)
    assert shipped.name == "other"
    assert [c.failed_budgets[0].split(":")[0] for c in cands[:3]] == ["size", "accuracy", "ops"]
    # nothing meets every budget: the best metric among those that fit the size budget
    budgets = Budgets(artifact_size=50_000, download_size=90_000, min_metric=0.95)
    shipped, why = choose([cand("fp32", 60_000, 1.0, metric=0.96), cand("int8", 12_000, 0.5, metric=0.90)],
                          "fastest-within-budget", budgets)
    assert shipped.name == "int8" and why.startswith("no candidate meets every budget")
    # ... and of equal metrics the fastest, not the smallest (grocery on LiteRT: 3.4 ms vs 7.2 ms)
    cands = [cand("int8", 25_000, 3.4, metric=0.39), cand("int8-dynamic-range", 19_000, 7.2, metric=0.39),
             cand("fp32", 60_000, 3.7, metric=0.40)]
    shipped, why = choose(cands, "fastest-within-budget", budgets)
    assert shipped.name == "int8" and why.endswith("the fastest of those with that metric")


@pytest.mark.parametrize("policy", ["int8", "fp32"])
def test_forced_policy_ships_its_artifact_and_says_what_it_costs(policy):
    cands = [cand("fp32", 60_000, 1.0), cand("int8", 20_000, 3.0)]
    shipped, why = choose(cands, policy, BUDGETS)
    assert shipped.name == policy
    if policy == "int8":
        assert "fp32 meets the budgets and runs 3.00x faster" in why


def test_unknown_policy():
    with pytest.raises(ValueError, match="fastest-within-budget"):
        choose([cand("fp32", 1, 1.0), cand("int8", 1, 1.0)], "smallest", BUDGETS)


def test_smallest_within_budget_ships_the_fewest_bytes_and_says_what_speed_it_gave_up():
    # The bitext student sized in int8 bytes: its fp32 file is 3x larger and a little faster.
    cands = [cand("fp32", 60_000, 0.011), cand("int8", 20_000, 0.016), cand("int8-dynamic", 21_000, 0.012),
             cand("tiny-but-wrong", 5_000, 0.001, metric=0.5)]
    shipped, why = choose(cands, "smallest-within-budget", BUDGETS)
    assert shipped.name == "int8" and why.startswith("smallest artifact that meets every budget (20000 B)")
    assert "fp32 is 1.45x faster at 60000 B" in why
    assert cands[0].reason == "larger: 60000 B vs 20000 B" and cands[3].reason.startswith("misses accuracy")
    # Nothing within budget: the same fallback as fastest-within-budget (best metric that fits)
    over = [cand("fp32", 200_000, 0.011), cand("int8", 20_000, 0.016, metric=0.5)]
    assert choose(over, "smallest-within-budget", BUDGETS)[0].name == "int8"


def test_a_smallest_student_recipe_ships_by_size_unless_the_profile_forces_a_precision():
    import dataclasses
    from types import SimpleNamespace

    from edge_kd.stages.quantize import _ship_policy
    from edge_kd.targets import load_target

    target = load_target("ort-mobile")
    smallest = SimpleNamespace(student=SimpleNamespace(objective="smallest-within-drop"))
    best = SimpleNamespace(student=SimpleNamespace(objective="best-under-budget"))
    assert _ship_policy(smallest, target) == ("smallest-within-budget",
                                              "recipe: [student] objective = 'smallest-within-drop'")
    assert _ship_policy(best, target) == (None, None)
    forced = dataclasses.replace(target, quantization=dataclasses.replace(target.quantization, ship="int8"))
    assert _ship_policy(smallest, forced) == (None, None)
