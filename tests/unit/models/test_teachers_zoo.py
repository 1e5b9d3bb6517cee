"""Teacher registry, fine-tuning on cached features, save/reload without pickles."""
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_kd.data import ArrayDataset, TabularSchema, load_image_list, load_tabular_csv, train_val_test_split
from edge_kd.errors import InputError
from edge_kd.models.finetune import FinetuneSettings, compute_features, finetune_head
from edge_kd.models.tabular import TabularMLP
from edge_kd.models.teachers import TEACHERS, build_teacher, load_teacher, train_teacher

FIX = Path(__file__).resolve().parents[2] / "fixtures"
torch.set_num_threads(1)


def test_registry_names_and_unknown():
    assert TEACHERS.names() == ["efficientnet-lite0", "lightgbm", "minilm-l6", "resnet18", "sasrec", "tabular-mlp"]
    with pytest.raises(InputError, match="unknown teacher 'bert'; known: efficientnet-lite0, lightgbm, minilm-l6"):
        load_teacher("bert")


def _blobs(n=120, classes=3, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centers = rng.normal(0, 3, (classes, dim))
    x = (centers[labels] + rng.normal(0, 0.5, (n, dim))).astype(np.float32)
    return ArrayDataset([x], ["numeric"], labels, [f"c{i}" for i in range(classes)])


def test_finetune_head_learns_and_caches(tmp_path):
    ds = _blobs()
    s = train_val_test_split(ds, val=0.2, test=0.2, seed=0)
    torch.manual_seed(0)
    backbone = TabularMLP(8, (), num_classes=7, hidden=(16,), dropout=0.0).eval()
    settings = FinetuneSettings(epochs=60, lr=0.05, batch_size=32)
    model, m = finetune_head(backbone, s.train, val=s.val, test=s.test, settings=settings, cache_dir=tmp_path)
    assert model.head.out_features == 3
    assert m["val_accuracy"] >= 0.95 and m["test_accuracy"] >= 0.95
    assert m["feature_cache_hits"] == 0 and len(list((tmp_path / "features").glob("*.npy"))) == 3
    # Head-only: the trunk did not move, so the second run reads all three feature files.
    _, m2 = finetune_head(model, s.train, val=s.val, test=s.test, settings=settings, cache_dir=tmp_path)
    assert m2["feature_cache_hits"] == 3
    # A changed trunk changes the key.
    with torch.no_grad():
        model.body[0].weight.add_(1.0)
    _, hit = compute_features(model, s.train, cache_dir=tmp_path)
    assert hit is False


def test_finetune_without_val_holds_out_and_unfreeze_needs_tail_blocks(tmp_path):
    ds = _blobs(60)
    backbone = TabularMLP(8, (), num_classes=3, hidden=(8,), dropout=0.0).eval()
    _, m = finetune_head(backbone, ds, settings=FinetuneSettings(epochs=5), cache=False)
    assert m["val_rows"] == 6 and m["train_rows"] == 54
    with pytest.raises(InputError, match="tail_blocks"):
        finetune_head(backbone, ds, settings=FinetuneSettings(epochs=1, unfreeze_last=1), cache=False)
    with pytest.raises(InputError, match="cannot be fine-tuned"):
        finetune_head(torch.nn.Linear(8, 3), ds)


def test_resnet_teacher_on_images_with_unfreeze(tmp_path):
    train = load_image_list(FIX / "images", "train", size=32)
    val = load_image_list(FIX / "images", "val", size=32)
    torch.manual_seed(0)
    teacher = build_teacher("resnet18", train)
    assert teacher.preprocessing == {"kind": "image", "scaling": "imagenet", "size": 32}
    before = teacher.model.layer4[1].conv2.weight.detach().clone()
    settings = FinetuneSettings(epochs=20, lr=0.01, feature_batch_size=6, unfreeze_last=1, unfreeze_epochs=1)
    teacher = train_teacher(teacher, train, val, settings=settings, cache_dir=tmp_path)
    assert not torch.equal(before, teacher.model.layer4[1].conv2.weight)  # last block was trained
    assert all(p.requires_grad for p in teacher.model.parameters())  # freezing was undone
    assert "unfreeze_seconds" in teacher.metrics and teacher.metrics["val_accuracy"] >= 0.5
    with pytest.raises(InputError, match="loaded at 32x32, the teacher needs 64x64"):
        build_teacher("resnet18", train, image_size=64).prepare(train)


def test_tabular_teacher_train_save_reload(tmp_path):
    ds = load_tabular_csv(FIX / "shoppers_small.csv",
                          TabularSchema(label="Revenue", categorical=("Month", "VisitorType", "Weekend")))
    s = train_val_test_split(ds, val=0.25, test=0.25, seed=0)
    teacher = build_teacher("tabular-mlp", s.train, hidden=(16,))
    assert [i.name for i in teacher.inputs] == ["numeric", "categorical"]
    teacher = train_teacher(teacher, s.train, s.val, s.test, settings={"epochs": 3, "batch_size": 8})
    assert {"val_roc_auc", "test_accuracy", "test_roc_auc"} <= set(teacher.metrics)
    logits = teacher.predict(s.test)
    assert logits.shape == (len(s.test), 2)
    spec_path = teacher.save(tmp_path / "teacher")
    assert (tmp_path / "teacher" / "teacher.safetensors").is_file()
    again = load_teacher(tmp_path / "teacher")
    assert again.name == "tabular-mlp" and again.label_names == ["FALSE", "TRUE"]
    assert np.allclose(again.predict(s.test), logits, atol=1e-6)
    assert spec_path.name == "teacher.json"
    again.model(*again.example_inputs())  # example inputs fit the model (categorical codes in range)


def test_user_factory_teacher_and_input_mismatch():
    teacher = load_teacher("edge_kd.testing.tiny_models:tiny_mlp", inputs="features:1x12:float32")
    ds = ArrayDataset([np.zeros((4, 12), np.float32)], ["features"], np.array([0, 1, 0, 1]))
    assert teacher.predict(ds).shape == (4, 2)
    two = ArrayDataset([np.zeros((4, 12), np.float32), np.zeros((4, 2), np.int64)], ["a", "b"], np.array([0, 1, 0, 1]))
    with pytest.raises(InputError, match="yields 2 input"):
        teacher.prepare(two)
    with pytest.raises(InputError, match="give its inputs"):
        load_teacher("edge_kd.testing.tiny_models:tiny_mlp")
