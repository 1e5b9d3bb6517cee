"""Whole-network fine-tune (``unfreeze_last = "all"``): every layer trains, the fit is cached on disk,
an interrupted fit resumes from its last epoch checkpoint with the same result."""
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edge_kd.config import from_dict
from edge_kd.data import load_image_list
from edge_kd.errors import ConfigError
from edge_kd.models import finetune
from edge_kd.models.finetune import FinetuneSettings, augment_images, finetune_head
from edge_kd.recipe import FinetuneConfig

FIX = Path(__file__).resolve().parents[2] / "fixtures"
torch.set_num_threads(1)


class TinyBackbone(nn.Module):
    """The backbone hooks finetune_head needs, on a 2-conv network."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.head = nn.Linear(8, num_classes)

    def forward_features(self, image):
        return self.body(image)

    def forward(self, image):
        return self.head(self.forward_features(image))

    def replace_head(self, num_classes):
        self.head = nn.Linear(8, num_classes)


def _data():
    train = load_image_list(FIX / "images", "train", size=16)
    val = load_image_list(FIX / "images", "val", size=16, label_names=train.label_names)
    return train, val


SETTINGS = FinetuneSettings(epochs=5, lr=0.05, feature_batch_size=4, unfreeze_last="all", unfreeze_epochs=3,
                            unfreeze_lr=1e-2, unfreeze_batch_size=4, label_smoothing=0.1)


def _fit(tmp_path, settings=SETTINGS):
    train, val = _data()
    torch.manual_seed(0)
    return finetune_head(TinyBackbone(), train, val=val, settings=settings, cache_dir=tmp_path)


def test_whole_network_trains_and_is_cached(tmp_path):
    torch.manual_seed(0)
    before = TinyBackbone().body[0].weight.detach().clone()
    model, m = _fit(tmp_path)
    assert not torch.equal(before, model.body[0].weight)  # the first conv trained, not only the head
    assert m["full_finetune_epochs"] == 3 and 1 <= m["full_finetune_best_epoch"] <= 3
    assert [h["epoch"] for h in m["full_finetune_history"]] == [1, 2, 3]
    assert all(h["cpu_seconds"] >= 0 and 0 <= h["val_accuracy"] <= 1 for h in m["full_finetune_history"])
    assert m["full_finetune_val_accuracy"] == max(h["val_accuracy"] for h in m["full_finetune_history"])
    assert m["full_finetune_cache_hit"] is False and not model.training
    cached = list((tmp_path / "teachers").glob("*.pt"))
    assert [p.name for p in cached] == [Path(m["full_finetune_cache"]).name]  # no checkpoint left behind
    again, m2 = _fit(tmp_path)
    assert m2["full_finetune_cache_hit"] is True and m2["full_finetune_history"] == m["full_finetune_history"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    # A setting that changes the result changes the key: a new fit, not the cached one.
    _, m3 = _fit(tmp_path, FinetuneSettings(**{**SETTINGS.__dict__, "unfreeze_lr": 5e-3}))
    assert m3["full_finetune_cache_hit"] is False


def test_interrupted_fit_resumes_with_the_same_result(tmp_path, monkeypatch):
    reference, _ = _fit(tmp_path / "straight")
    real = finetune.evaluate_accuracy
    calls = {"n": 0}

    def dies_in_epoch_two(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(finetune, "evaluate_accuracy", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "killed")
    assert len(list((tmp_path / "killed" / "teachers").glob("*.ckpt.pt"))) == 1  # epoch 1 is saved
    monkeypatch.setattr(finetune, "evaluate_accuracy", real)
    resumed, m = _fit(tmp_path / "killed")
    assert [h["epoch"] for h in m["full_finetune_history"]] == [1, 2, 3]
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name


def test_augmentation_keeps_shape_and_range():
    pixels = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    out = augment_images(pixels, np.random.default_rng(1))
    assert out.shape == (4, 3, 16, 16) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 255
    assert not torch.equal(out, torch.from_numpy(pixels).permute(0, 3, 1, 2).float())


def test_recipe_accepts_all_and_rejects_other_words():
    cfg = from_dict(FinetuneConfig, {"unfreeze_last": "all", "unfreeze_epochs": 4, "label_smoothing": 0.1})
    assert cfg.unfreeze_last == "all" and cfg.label_smoothing == 0.1
    assert from_dict(FinetuneConfig, {"unfreeze_last": 2}).unfreeze_last == 2
    with pytest.raises(ConfigError, match="unfreeze_last"):
        from_dict(FinetuneConfig, {"unfreeze_last": "everything"})
    with pytest.raises(ConfigError, match="label_smoothing"):
        from_dict(FinetuneConfig, {"label_smoothing": 1.5})
    with pytest.raises(ValueError, match="unfreeze_last"):
        FinetuneSettings(unfreeze_last="most")
