"""Student families: knobs are monotone in size, specs reload without code, inputs match."""
import json

import numpy as np
import pytest
import torch

from edge_kd.errors import InputError
from edge_kd.models.spec import ModelSpec
from edge_kd.models.students import StudentFamily, knob_values, make_family

torch.set_num_threads(1)


@pytest.mark.parametrize("name,opts,sample", [
    ("text_hashed", {"num_classes": 5, "dim": 8, "max_ids": 12}, [256, 1024, 4096]),
    ("text_wordpiece", {"num_classes": 5, "dim": 8, "max_ids": 12, "pieces": 4096}, [128, 1024, 4096]),
    ("mobilenet", {"num_classes": 3, "resolution": 32}, [0.25, 0.5, 1.0]),
    ("tabular_mlp", {"num_dense": 6, "cardinalities": [3, 5]}, [8, 64, 256]),
])
def test_family_monotone_and_runs(name, opts, sample):
    family = make_family(name, **opts)
    sizes = [family.num_params(v) for v in sample]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    model = family.build(sample[0]).eval()
    out = model(*family.example_inputs(sample[0]))
    assert out.shape[0] == 1
    assert sizes[0] == sum(p.numel() for p in model.parameters())  # meta-device count is exact


def test_text_student_masks_padding_and_reloads(tmp_path):
    from edge_kd.models.spec import save_state_dict

    family = make_family("text_hashed", num_classes=3, dim=4, max_ids=6)
    model = family.build(300).eval()
    a = torch.tensor([[5, 9, 0, 0, 0, 0]])
    b = torch.tensor([[5, 9, 0, 0, 0, 0]])
    b2 = torch.tensor([[9, 5, 0, 0, 0, 0]])  # a bag: order does not matter, padding does not count
    assert torch.allclose(model(a), model(b2))
    emb = model.embed.weight
    assert torch.allclose(model.pooled(b), (emb[5] + emb[9]) / 2)
    save_state_dict(model, tmp_path / "w.safetensors")
    spec = family.spec(300, "w.safetensors")
    spec.save(tmp_path / "s.json")
    raw = json.loads((tmp_path / "s.json").read_text())
    assert raw["factory"] == "edge_kd.models.students.text:hashed_text_student" and raw["kwargs"]["buckets"] == 300
    again = ModelSpec.load(tmp_path / "s.json").build()
    assert torch.equal(again(a), model(a))
    assert spec.inputs[0].shape == (1, 6) and spec.inputs[0].high == 301


def test_tabular_fields_have_their_own_tables_and_old_weights_load():
    family = make_family("tabular_mlp", num_dense=2, cardinalities=[2, 3], num_outputs=2)
    model = family.build(8).eval()
    assert [t.num_embeddings for t in model.embeds] == [2, 3]
    cats = torch.tensor([[1, 2]])
    feats = torch.cat([torch.zeros(1, 2), model.embeds[0].weight[1:2], model.embeds[1].weight[2:3]], 1)
    assert torch.allclose(model(torch.zeros(1, 2), cats), model.mlp(feats))
    # The former layout: one table with the fields' rows one after another, looked up at code + offset.
    shared = torch.randn(5, 8)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("embeds.")}
    state["embed.weight"] = shared
    old = family.build(8).eval()
    old.load_state_dict(state, strict=True)
    old_feats = torch.cat([torch.zeros(1, 2), shared[1:2], shared[2 + 2:2 + 3]], 1)
    assert torch.allclose(old(torch.zeros(1, 2), cats), old.mlp(old_feats))
    bad = dict(state, **{"embed.weight": torch.randn(7, 8)})
    with pytest.raises(RuntimeError, match="embed.weight"):
        family.build(8).load_state_dict(bad, strict=True)


def test_text_student_pooling_equals_the_masked_mean():
    """The XNNPACK-friendly pooling (mask lookup, means over tokens) is the former masked mean."""
    family = make_family("text_hashed", num_classes=3, dim=8, max_ids=10)
    model = family.build(300).eval()
    with torch.no_grad():
        model.embed.weight[0].normal_()  # even a non-zero padding row must not count
    ids = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [7, 0, 3, 3, 0, 0, 299, 1, 0, 0],
                        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
    mask = (ids != 0).float().unsqueeze(-1)
    expected = (model.embed(ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    assert torch.allclose(model.pooled(ids), expected, atol=1e-6)
    assert torch.equal(model.pooled(ids[:1]), torch.zeros(1, 8))
    assert "token_mask" not in model.state_dict()  # a constant of the architecture, not a weight


def test_wordpiece_student_is_an_ordered_masked_mean_and_its_knob_stops_at_the_ranked_pieces():
    family = make_family("text_wordpiece", num_classes=3, dim=8, max_ids=6, pieces=700, kernel=3)
    assert family.knob == "vocab" and family.values[0] == 128 and family.values[-1] == 672  # steps of 32, <= 700
    model = family.build(300).eval()
    assert family.inputs_for(300)[0].high == 301 and family.inputs_for(300)[0].shape == (1, 6)
    # the convolution sees neighbours: order matters, unlike the hashed bag
    with torch.no_grad():
        model.conv.weight.normal_()  # initialized small; a trained one is not
    a, b = torch.tensor([[5, 9, 7, 0, 0, 0]]), torch.tensor([[9, 5, 7, 0, 0, 0]])
    assert not torch.allclose(model(a), model(b))
    # padding never counts, whatever its row holds, and the trailing zeros do not change the mean
    with torch.no_grad():
        model.embed.weight[0].normal_()
    bag = make_family("text_wordpiece", num_classes=3, dim=8, max_ids=6, pieces=700).build(300).eval()
    assert bag.conv is None  # the default: a bag of pieces
    emb = bag.embed.weight
    pooled = bag.head[-1].weight @ ((emb[5] + emb[9]) / 2) + bag.head[-1].bias
    assert torch.allclose(bag(torch.tensor([[5, 9, 0, 0, 0, 0]]))[0], pooled, atol=1e-6)
    assert "token_mask" not in model.state_dict()
    dims = make_family("text_wordpiece", num_classes=3, knob="dim", pieces=700)
    assert dims.kwargs["vocab"] == 700 and dims.values[0] == 4
    with pytest.raises(InputError, match="kernel must be 0"):
        make_family("text_wordpiece", num_classes=3, kernel=2)
    with pytest.raises(InputError, match="knob must be 'vocab' or 'dim'"):
        make_family("text_wordpiece", num_classes=3, knob="buckets")


def test_custom_family_and_errors():
    fam = StudentFamily.custom("edge_kd.testing.tiny_models:tiny_mlp", knob="hidden", low=8, high=64, step=8,
                               inputs=["features:1x12:float32"], kwargs={"num_classes": 2})
    assert fam.values == (8, 16, 24, 32, 40, 48, 56, 64)
    assert fam.num_params(8) < fam.num_params(64)
    assert fam.build(16)(*fam.example_inputs(16)).shape == (1, 2)
    with pytest.raises(InputError, match="cannot import module"):
        StudentFamily.custom("no_such_pkg.models:f", knob="w", low=1, high=2, inputs=["x:1x2:float32"])
    with pytest.raises(InputError, match="unknown student family 'txt_hashed'.*Did you mean 'text_hashed'"):
        make_family("txt_hashed")
    with pytest.raises(InputError, match="knob must be"):
        make_family("text_hashed", num_classes=2, knob="depth")
    assert knob_values(0.25, 0.5, 0.05) == (0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
