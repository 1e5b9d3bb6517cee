"""Budget-driven sizing with an injected measurer (no exporter needed): search, margin, shrink-on-
overshoot, and the 'smaller than the smallest student' error."""
import pytest

from edge_kd.distill.sizing import Measurement, SizeBudget, choose_student
from edge_kd.errors import InputError
from edge_kd.models.students import make_family
from edge_kd.targets import TargetProfile, load_target


def _target(size: str, download: str | None = None, mode: str = "int8") -> TargetProfile:
    d = load_target("ort-mobile").to_dict()
    d["budgets"]["artifact_size"] = size
    d["budgets"]["download_size"] = download or size
    d["quantization"]["mode"] = mode
    return TargetProfile.from_dict(d, source="<test>")


def _family():
    return make_family("text_hashed", num_classes=4, dim=8, max_ids=16, low=64, high=8192, step=64)


def _measurer(bytes_per_weight: float, overhead: int = 2000, calls=None):
    def measure(model, example_inputs, target):
        n = sum(p.numel() for p in model.parameters())
        if calls is not None:
            calls.append(n)
        raw = int(overhead + n * bytes_per_weight)
        return Measurement(raw, int(raw * 0.9), "fake")

    return measure


def test_int8_search_picks_largest_fitting_value():
    family = _family()
    target = _target("32KiB")
    decision = choose_student(family, target, measure=_measurer(1.0), extra_bytes=300)
    assert decision.bundle_bytes <= 32 * 1024
    # the next larger knob value would not fit inside the margin
    nxt = family.values[family.values.index(decision.value) + 1]
    assert 2000 + family.num_params(nxt) + 300 > 32 * 1024 * 0.95
    assert decision.real_bytes == 2000 + decision.params
    d = decision.to_dict()
    assert d["knob"] == "buckets" and d["bundle_bytes"] == decision.real_bytes + 300 and d["attempts"]


def test_extra_bytes_that_grow_with_the_knob_are_counted_per_candidate():
    """A wordpiece student ships its vocabulary: 10 bytes a row on top of the model's 8 (dim 8, int8)."""
    family = _family()
    target = _target("32KiB")
    fixed = choose_student(family, target, measure=_measurer(1.0), extra_bytes=300)
    growing = choose_student(family, target, measure=_measurer(1.0), extra_bytes=lambda value: 300 + 10 * value)
    assert growing.value < fixed.value
    assert growing.extra_bytes == 300 + 10 * growing.value and growing.bundle_bytes <= 32 * 1024
    nxt = family.values[family.values.index(growing.value) + 1]
    assert 2000 + family.num_params(nxt) + 300 + 10 * nxt > 32 * 1024 * 0.95
    assert all(a["bundle_bytes"] == a["bytes"] + 300 + 10 * a["value"] for a in growing.attempts)


def test_runtime_that_keeps_tables_in_float_is_learned_and_shrunk():
    # the profile says int8 (1 byte/weight predicted) but the runtime keeps 4 bytes/weight: the first
    # verified export overshoots, the fit learns the slope and the search shrinks automatically
    calls = []
    decision = choose_student(_family(), _target("32KiB"), measure=_measurer(4.0, calls=calls))
    assert decision.real_bytes <= 32 * 1024
    assert any(a["bundle_bytes"] > 32 * 1024 for a in decision.attempts)  # an overshoot happened and was fixed
    assert decision.real_bytes > 32 * 1024 * 0.8  # and it still ends close to the budget
    assert len(calls) <= 7


def test_gzip_budget_binds():
    decision = choose_student(_family(), _target("64KiB", download="16KiB"), measure=_measurer(1.0))
    assert decision.real_gzip_bytes <= 16 * 1024
    assert decision.real_bytes < 20 * 1024


def test_three_budgets_three_sizes():
    values = [choose_student(_family(), _target(b), measure=_measurer(1.0)).value for b in ("64KiB", "32KiB", "16KiB")]
    assert values[0] > values[1] > values[2]


def test_budget_below_smallest_student_names_smallest_size():
    with pytest.raises(InputError, match=r"smallest achievable size is 2\.\d+ KiB"):
        choose_student(_family(), _target("2KiB"), measure=_measurer(1.0))


def test_budget_margin_validation():
    with pytest.raises(InputError, match="margin"):
        SizeBudget(1000, margin=0.7)
    with pytest.raises(InputError, match="needs a size budget"):
        SizeBudget(None, None)


# ---- objectives ----------------------------------------------------------------------------------
from edge_kd.distill.sizing import smallest_within_drop  # noqa: E402


def _metric_by_params(family, knee_params: int, good: float = 0.95, bad: float = 0.80, calls=None):
    """A validation metric that saturates once the student has ``knee_params`` parameters (a small
    student is already good enough), standing in for one training per candidate."""
    def evaluate(value):
        if calls is not None:
            calls.append(value)
        return good if family.num_params(value) >= knee_params else bad
    return evaluate


def test_smallest_within_drop_picks_a_smaller_student_than_best_under_budget():
    family, target = _family(), _target("64KiB")
    measure_calls = []
    measure = _measurer(1.0, calls=measure_calls)
    upper = choose_student(family, target, measure=measure, extra_bytes=300)
    knee = family.num_params(family.values[10])
    evaluated = []
    decision, tried = smallest_within_drop(family, target, upper, evaluate=_metric_by_params(family, knee, calls=evaluated),
                                           min_allowed=0.94, measure=measure, extra_bytes=300, max_trainings=20)
    # the smallest value that reaches the metric, found by bisection with one training per candidate
    assert decision.value == family.values[10]
    assert decision.bundle_bytes < upper.bundle_bytes / 2
    assert tried[0]["value"] == upper.value and len(tried) == len(evaluated) <= 9
    for c in tried:  # every candidate has real (measured) bytes and its validation metric
        assert c["bytes"] == 2000 + c["params"] and c["bundle_bytes"] == c["bytes"] + 300
        assert c["within_drop"] == (c["val_metric"] >= 0.94) and c["gzip_bytes"] > 0
    assert sum(1 for c in tried if c["within_drop"]) >= 1 and any(not c["within_drop"] for c in tried)
    # the upper bound's bytes came from the size search: not exported twice
    assert measure_calls.count(upper.params) == 1
    assert decision.to_dict()["bundle_bytes"] == decision.real_bytes + 300


def test_smallest_within_drop_keeps_the_largest_when_no_size_is_good_enough():
    family, target = _family(), _target("32KiB")
    upper = choose_student(family, target, measure=_measurer(1.0))
    decision, tried = smallest_within_drop(family, target, upper, evaluate=lambda v: 0.5, min_allowed=0.9,
                                           measure=_measurer(1.0))
    assert decision.value == upper.value and len(tried) == 1 and tried[0]["within_drop"] is False


def test_smallest_within_drop_bounds_the_trainings():
    family, target = _family(), _target("64KiB")
    upper = choose_student(family, target, measure=_measurer(1.0))
    evaluated = []
    decision, tried = smallest_within_drop(family, target, upper, evaluate=_metric_by_params(family, 0, calls=evaluated),
                                           min_allowed=0.9, measure=_measurer(1.0), max_trainings=3)
    assert len(evaluated) == 3 and decision.value == tried[-1]["value"] and decision.value < upper.value
