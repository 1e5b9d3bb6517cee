"""ModelSpec: how users hand over networks without pickles."""
from __future__ import annotations

import pickle

import pytest
import torch

from edge_kd.errors import InputError
from edge_kd.models.spec import InputSpec, ModelSpec, import_object, load_state_dict, save_state_dict
from edge_kd.testing.tiny_models import TINY_SPECS


def test_input_spec_parse():
    spec = InputSpec.parse("input_ids:1x32:int64:30522")
    assert spec.shape == (1, 32) and spec.dtype == "int64" and spec.high == 30522
    example = spec.example()
    assert example.dtype == torch.int64 and int(example.max()) < 30522
    assert InputSpec.parse("image:1x3x8x8:float32").example(batch=4).shape == (4, 3, 8, 8)
    for bad in ["image:1x3:float128", "image", "image:1xx3:float32", "x:0x3:float32"]:
        with pytest.raises(InputError):
            InputSpec.parse(bad)


def test_round_trip_through_json_and_safetensors(tmp_path):
    spec = TINY_SPECS["cnn"]
    model = spec.build()
    torch.nn.init.normal_(model.classifier.weight)
    weights = save_state_dict(model, tmp_path / "w.safetensors")
    saved = ModelSpec(spec.factory, spec.inputs, {}, "w.safetensors").save(tmp_path / "model.json")
    reloaded = ModelSpec.load(saved).build()
    x = spec.example_inputs()
    torch.testing.assert_close(reloaded(*x), model(*x))
    assert weights.suffix == ".safetensors"


def test_torch_state_dict_loads_with_weights_only(tmp_path):
    model = TINY_SPECS["mlp"].build()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    state = load_state_dict(tmp_path / "w.pt")
    assert set(state) == set(model.state_dict())


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"weight": Evil()}, fh)
    with pytest.raises(InputError, match="weights_only=True"):
        load_state_dict(path)


def test_bad_references_and_weights(tmp_path):
    with pytest.raises(InputError, match="cannot import module"):
        import_object("no_such_pkg.models:build")
    with pytest.raises(InputError, match="has no attribute"):
        import_object("edge_kd.testing.tiny_models:nope")
    with pytest.raises(InputError, match="does not exist"):
        load_state_dict(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not really")
    with pytest.raises(InputError, match="safetensors"):
        load_state_dict(tmp_path / "junk.safetensors")
    other = save_state_dict(TINY_SPECS["mlp"].build(), tmp_path / "mlp.safetensors")
    spec = ModelSpec(TINY_SPECS["cnn"].factory, TINY_SPECS["cnn"].inputs, {}, str(other))
    with pytest.raises(InputError, match="do not fit"):
        spec.build()
