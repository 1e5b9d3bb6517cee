"""Every student family exports to every target format, and the runtime computes what PyTorch does
(export_model checks parity in the real runtime)."""
import pytest
import torch

from edge_kd.export import export_model
from edge_kd.models.students import make_family
from edge_kd.targets import load_target

pytestmark = pytest.mark.integration
torch.set_num_threads(1)

FAMILIES = {
    "text": (lambda: make_family("text_hashed", num_classes=5, dim=8, max_ids=16), 512),
    "wordpiece": (lambda: make_family("text_wordpiece", num_classes=5, dim=8, max_ids=16, pieces=1024), 512),
    "image": (lambda: make_family("mobilenet", num_classes=3, resolution=32), 0.25),
    "tabular": (lambda: make_family("tabular_mlp", num_dense=4, cardinalities=[3, 5], num_outputs=2), 16),
}


@pytest.mark.parametrize("target", ["ort-mobile", "tflite-int8", "android-arm64-xnnpack"])
@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_student_exports_with_parity(tmp_path, target, kind):
    make, value = FAMILIES[kind]
    family = make()
    model = family.build(value).eval()
    result = export_model(model, family.example_inputs(value), load_target(target), tmp_path)
    assert result.primary.is_file() and result.parity["checked"]
    assert result.parity["max_abs_error"] <= result.parity["tolerance"]
