"""Same recipe, three profiles (written here with ``extends ort-mobile``; ORT int8 files carry ~17 KiB of
fixed overhead, hence 96/64/40 KiB budgets): three students, each of whose real
int8 artifact + preprocessing spec fits its own budget; a too-small budget names the smallest size."""
import numpy as np
import pytest
import torch

from edge_kd.distill.sizing import choose_student, default_measurer
from edge_kd.errors import InputError
from edge_kd.models.students import make_family
from edge_kd.preprocess.text import TextPreprocessSpec
from edge_kd.targets import load_target

pytestmark = pytest.mark.integration
torch.set_num_threads(1)

LABELS = ("cancel_order", "track_order", "refund", "change_address")


def _profile(tmp_path, name, size):
    path = tmp_path / f"{name}.toml"
    path.write_text(f'extends = "ort-mobile"\nname = "{name}"\n[budgets]\nartifact_size = "{size}"\n'
                    f'download_size = "{size}"\n')
    return load_target(str(path))


def test_three_profiles_three_students_under_budget(tmp_path):
    from edge_kd.quantize import quantize_model

    family = make_family("text_hashed", num_classes=len(LABELS), dim=8, max_ids=16, low=64, high=8192, step=64)
    measure = default_measurer()
    results = []
    for name, size, limit in (("tiny-96k", "96KiB", 98304), ("tiny-64k", "64KiB", 65536), ("tiny-40k", "40KiB", 40960)):
        target = _profile(tmp_path, name, size)
        assert target.quantization.mode == "int8"
        spec = TextPreprocessSpec(buckets=family.values[0], max_ids=16, labels=LABELS)
        decision = choose_student(family, target, measure=measure, extra_bytes=spec.spec_bytes())
        # the chosen student, exported for real once more: the file the app ships
        model = family.build(decision.value).eval()
        spec = TextPreprocessSpec(buckets=decision.value, max_ids=16, labels=LABELS)
        calib = [(np.random.default_rng(i).integers(0, decision.value + 1, (1, 16)),) for i in range(8)]
        result = quantize_model(model, family.example_inputs(decision.value), target, calib, tmp_path / name,
                                method="minmax", max_fallback_layers=0, ship="int8")
        bundle = result.primary.stat().st_size + spec.spec_bytes()
        assert bundle <= limit, (name, bundle, decision.to_dict())
        assert decision.method == "int8-export"
        results.append((decision.value, bundle, limit))
    values = [r[0] for r in results]
    assert values[0] > values[1] > values[2]
    assert all(b > 0.6 * lim for _, b, lim in results)  # the largest that fits, not just any that fits


def test_budget_smaller_than_smallest_student(tmp_path):
    family = make_family("text_hashed", num_classes=4, dim=8, max_ids=16, low=64, high=8192, step=64)
    with pytest.raises(InputError, match="smallest achievable size is"):
        choose_student(family, _profile(tmp_path, "tiny-1k", "1KiB"), measure=default_measurer())
