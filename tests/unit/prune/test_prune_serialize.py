"""Pruned models reload from ModelSpec JSON + safetensors, without unpickling code."""
import json

import torch

from edge_kd.models.spec import ModelSpec
from edge_kd.prune.lowrank import factorize, rewrite_record
from edge_kd.prune.pruner import PruneConfig, prune_to_goal
from edge_kd.prune.serialize import load_pruned, save_pruned
from edge_kd.testing.tiny_models import TINY_SPECS


def _prune(kind, **cfg):
    spec = TINY_SPECS[kind]
    model = spec.build()
    pruned, _ = prune_to_goal(model, spec.example_inputs(), PruneConfig(goal="macs", amount=0.5, round_to=4, **cfg))
    return spec, pruned


def test_cnn_round_trip(tmp_path):
    spec, pruned = _prune("cnn")
    path = save_pruned(pruned, spec, tmp_path)
    data = json.loads(path.read_text())
    assert data["factory"] == "edge_kd.prune.serialize:build_pruned"
    assert data["kwargs"]["base_factory"] == spec.factory
    assert data["kwargs"]["shapes"]  # recorded the shrunk tensors
    assert (tmp_path / "model.safetensors").is_file()
    reloaded = ModelSpec.load(path).build()
    x = spec.example_inputs()
    torch.testing.assert_close(reloaded(*x), pruned(*x))
    assert reloaded.features[0].out_channels == pruned.features[0].out_channels < 16


def test_text_with_embedding_dims_round_trip(tmp_path):
    spec, pruned = _prune("text", protect_embeddings=False)
    reloaded = load_pruned(save_pruned(pruned, spec, tmp_path))
    x = spec.example_inputs()
    torch.testing.assert_close(reloaded(*x), pruned(*x))
    assert reloaded.encoder.self_attn.embed_dim == pruned.encoder.self_attn.embed_dim < 32


def test_pruned_then_factorized_round_trip(tmp_path):
    spec, pruned = _prune("mlp")
    layer = pruned.net[2]
    rank = max(1, min(layer.weight.shape) // 2)
    record = rewrite_record("net.2", layer, rank)
    pruned.net[2] = factorize(layer, rank)
    reloaded = load_pruned(save_pruned(pruned, spec, tmp_path, rewrites=[record]))
    x = spec.example_inputs()
    torch.testing.assert_close(reloaded(*x), pruned(*x))
    assert isinstance(reloaded.net[2], torch.nn.Sequential)


def test_repruning_a_pruned_spec_keeps_original_factory(tmp_path):
    spec, pruned = _prune("cnn")
    first = ModelSpec.load(save_pruned(pruned, spec, tmp_path / "a"))
    model = first.build()
    again, _ = prune_to_goal(model, first.example_inputs(), PruneConfig(goal="macs", amount=0.3, round_to=1))
    second = json.loads(save_pruned(again, first, tmp_path / "b").read_text())
    assert second["kwargs"]["base_factory"] == spec.factory
    reloaded = load_pruned(tmp_path / "b" / "model.json")
    x = spec.example_inputs()
    torch.testing.assert_close(reloaded(*x), again(*x))


def test_weights_file_is_safetensors_not_pickle(tmp_path):
    spec, pruned = _prune("mlp")
    save_pruned(pruned, spec, tmp_path)
    head = (tmp_path / "model.safetensors").read_bytes()[:16]
    assert not head.startswith(b"PK") and not head.startswith(b"\x80")  # not a zip/pickle
