"""Trainer: learns, early-stops, checkpoints atomically, resumes after Ctrl-C to the same result."""
import numpy as np
import pytest
import torch
from torch import nn

from edge_kd.distill.losses import build_loss
from edge_kd.distill.trainer import DistillData, EvalData, Hint, TrainConfig, metric_value, train_student
from edge_kd.errors import InputError

torch.set_num_threads(1)


def _data(n=96, d=8, c=3, seed=0):
    w = np.random.default_rng(99).normal(size=(d, c)).astype(np.float32)
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    teacher = (x @ w * 2).astype(np.float32)
    y = teacher.argmax(1).astype(np.int64)
    return x, y, teacher


def _student(d=8, c=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, c))


def _setup():
    x, y, t = _data()
    vx, vy, _ = _data(48, seed=1)
    return DistillData((x,), y, t), EvalData((vx,), vy)


CFG = TrainConfig(epochs=4, batch_size=16, lr=1e-2, patience=10, device="cpu", progress=False)


def test_distillation_learns_and_checkpoints(tmp_path):
    data, val = _setup()
    student = _student()
    result = train_student(student, build_loss("hinton", temperature=2.0, alpha=0.7), data, val, CFG,
                           checkpoint_dir=tmp_path)
    assert result.epochs_run == 4 and len(result.history) == 4
    assert result.best_metric > 0.6  # 3 classes: chance is ~0.33
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "best.safetensors").is_file()
    payload = torch.load(tmp_path / "last.pt", weights_only=True)
    assert payload["state"]["epoch"] == 4 and "optimizer" in payload and "scheduler" in payload
    assert not list(tmp_path.glob(".tmp-*"))


class _InterruptAt(nn.Module):
    """A loss that raises KeyboardInterrupt at its N-th call: Ctrl-C in the middle of an epoch."""

    def __init__(self, inner, at):
        super().__init__()
        self.inner, self.at, self.calls = inner, at, 0

    def forward(self, s, t, y):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.inner(s, t, y)


@pytest.mark.parametrize("loss_name", ["hinton", "logit_regression"])
def test_resume_after_interrupt_matches_uninterrupted(tmp_path, loss_name):
    data, val = _setup()
    ref = _student()
    ref_result = train_student(ref, build_loss(loss_name), data, val, CFG, checkpoint_dir=tmp_path / "ref")

    student = _student()
    steps_per_epoch = 96 // 16
    with pytest.raises(KeyboardInterrupt):  # dies in the middle of epoch 3
        train_student(student, _InterruptAt(build_loss(loss_name), 2 * steps_per_epoch + 3), data, val, CFG,
                      checkpoint_dir=tmp_path / "run")
    payload = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert payload["state"]["epoch"] == 2  # the last complete epoch, intact
    assert not list((tmp_path / "run").glob(".tmp-*"))

    resumed = _student()
    torch.manual_seed(123)  # a different RNG state: resume must restore the checkpoint's
    result = train_student(resumed, _InterruptAt(build_loss(loss_name), -1), data, val, CFG,
                           checkpoint_dir=tmp_path / "run", resume=True)
    assert result.resumed_from_epoch == 2 and result.epochs_run == 4
    assert result.history == ref_result.history
    for (k, a), (_, b) in zip(ref.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


def test_deterministic_given_seed():
    data, val = _setup()
    a, b = _student(), _student()
    train_student(a, build_loss("hinton"), data, val, CFG)
    train_student(b, build_loss("hinton"), data, val, CFG)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_early_stopping_and_best_weights_restored():
    data, val = _setup()
    student = _student()
    cfg = TrainConfig(epochs=30, batch_size=16, lr=1e-7, patience=2, device="cpu", progress=False)
    result = train_student(student, build_loss("ce"), data, val, cfg)
    assert result.stopped_early and result.epochs_run < 30
    assert result.best_epoch <= result.epochs_run - 2


def test_hint_loss_through_trainer():
    data, val = _setup()
    rng = np.random.default_rng(0)
    data.teacher_features = {"enc": rng.normal(size=(96, 5)).astype(np.float32)}
    student = _student()
    result = train_student(student, build_loss("hinton"), data, val, CFG, hints=[Hint("1", "enc", 0.5)])
    assert result.epochs_run == 4
    with pytest.raises(InputError, match="'nope' not found in the student"):
        train_student(_student(), build_loss("hinton"), data, val, CFG, hints=[Hint("nope", "enc")])


def test_bad_inputs():
    x, y, t = _data()
    with pytest.raises(InputError, match="teacher outputs have 10 rows"):
        DistillData((x,), y, t[:10])
    with pytest.raises(InputError, match="empty"):
        DistillData((x[:0],), y[:0], t[:0])
    data, val = _setup()
    data.labels = data.labels.copy()
    data.labels[0] = 7
    with pytest.raises(InputError, match="labels the teacher does not know"):
        train_student(_student(), build_loss("hinton"), data, val, CFG)
    with pytest.raises(InputError, match="metric"):
        TrainConfig(metric="f1")


def test_metrics_golden():
    assert metric_value(np.array([[1.0, 2.0], [3.0, 0.0]]), np.array([1, 1]), "accuracy") == 0.5
    assert metric_value(np.array([[-1.0], [2.0]]), np.array([0, 1]), "accuracy") == 1.0
