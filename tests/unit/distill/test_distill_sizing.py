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
