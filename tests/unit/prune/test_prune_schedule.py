"""Iterative schedule: even steps toward a MACs goal with recovery (one path: the distillation trainer),
a long final recovery, CPU time per step, and latency goals met or missed."""
import numpy as np
import pytest
import torch

from edge_kd.errors import InputError
from edge_kd.prune.pruner import PruneConfig
from edge_kd.prune.schedule import RecoveryConfig, RecoveryData, recover_with_trainer, run_schedule, teacher_logits
from edge_kd.testing.tiny_models import TINY_SPECS, tiny_cnn


def _random_data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g).numpy()
    y = torch.randint(0, 4, (n,), generator=g).numpy()
    return RecoveryData((x,), y, (x[:8],), y[:8])


def test_two_steps_with_recovery():
    x = TINY_SPECS["cnn"].example_inputs()
    evals = []
    result = run_schedule(tiny_cnn(), x, PruneConfig(goal="macs", amount=0.5, steps=2, round_to=1),
                          recovery_data=_random_data(), recovery=RecoveryConfig(max_batches=2, batch_size=8),
                          evaluate=lambda m: evals.append(1) or 0.5)
    assert [s.step for s in result.steps] == [0, 1, 2]
    assert result.steps[1].macs_ratio <= 0.75 + 1e-6 and result.steps[2].macs_ratio <= 0.5
    assert result.steps[1].macs_ratio > result.steps[2].macs_ratio
    assert result.steps[1].recovery["batches"] == 2
    assert result.goal_met and result.missed_by is None
    assert len(evals) == 3 + 2  # after each step, plus before recovery on the two pruning steps


@pytest.mark.parametrize("step_sizes, targets", [("even", [0.625, 0.25]), ("geometric", [0.5, 0.25])])
def test_step_sizes_split_the_goal_evenly_or_geometrically(step_sizes, targets):
    # 4x fewer MACs in two steps: even steps keep 1 - 0.75 k/2 of the original, geometric ones halve what is
    # left each time, so the first geometric step prunes deeper and the last one gentler.
    x = TINY_SPECS["cnn"].example_inputs()
    config = PruneConfig(goal="macs", amount=0.75, steps=2, round_to=1, step_sizes=step_sizes)
    result = run_schedule(tiny_cnn(width=32), x, config)
    assert [s.target_fraction for s in result.steps[1:]] == targets
    for step, target in zip(result.steps[1:], targets):
        assert target - 0.08 <= step.macs_ratio <= target + 1e-6


def test_unknown_step_sizes_are_refused():
    with pytest.raises(InputError, match="step_sizes 'linear' is unknown; known: even, geometric"):
        PruneConfig(goal="macs", amount=0.5, steps=2, step_sizes="linear")


def test_no_recovery_data_means_no_recovery():
    x = TINY_SPECS["cnn"].example_inputs()
    result = run_schedule(tiny_cnn(), x, PruneConfig(goal="macs", amount=0.5, steps=2, round_to=1))
    assert all(s.recovery == {} for s in result.steps)


def test_recovery_moves_student_toward_teacher():
    teacher = tiny_cnn(width=16)
    student = tiny_cnn(width=16)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    data = _random_data(32)
    x = torch.from_numpy(data.train_inputs[0])

    def gap():
        with torch.no_grad():
            return (student(x) - teacher(x)).abs().mean().item()

    before = gap()
    rec = recover_with_trainer(student, teacher_logits(teacher, data), data,
                               RecoveryConfig(epochs=5, lr=1e-2, alpha=1.0, batch_size=8, device="cpu"))
    assert gap() < before
    assert rec["epochs"] == 5 and rec["batches"] == 20
    assert rec["cpu_seconds"] > 0 and all(h["cpu_seconds"] >= 0 for h in rec["history"])


def test_latency_goal_met():
    from edge_kd.prune.macs import count_macs

    x = TINY_SPECS["cnn"].example_inputs()
    full = count_macs(tiny_cnn(), x).total
    fake = lambda m: 10.0 * count_macs(m, x).total / full  # noqa: E731 - latency proportional to MACs
    result = run_schedule(tiny_cnn(), x, PruneConfig(goal="latency", amount=6.0, round_to=1), latency=fake)
    assert result.goal_met and result.steps[-1].p50_ms <= 6.0 < result.steps[-2].p50_ms


def test_latency_goal_missed_reports_by_how_much():
    x = TINY_SPECS["cnn"].example_inputs()
    result = run_schedule(tiny_cnn(), x, PruneConfig(goal="latency", amount=0.5, round_to=1, max_layer_ratio=0.5),
                          latency=lambda m: 2.0)
    assert not result.goal_met and result.missed_by == pytest.approx(1.5)
    assert result.steps[-1].macs < result.steps[0].macs  # best effort is still smaller


def test_latency_goal_needs_a_runtime():
    with pytest.raises(InputError, match="latency measurement"):
        run_schedule(tiny_cnn(), TINY_SPECS["cnn"].example_inputs(), PruneConfig(goal="latency", amount=5.0))


def _colour_task(n: int, seed: int):
    """4 classes: which colour channel carries a brighter patch, or all three (a tiny CNN with global
    pooling learns it)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.rand(n, 3, 32, 32, generator=g) * 0.5
    for i, k in enumerate(y.tolist()):
        channels = slice(k, k + 1) if k < 3 else slice(0, 3)
        x[i, channels, 8:24, 8:24] += 0.4
    return x.numpy(), y.numpy()


def test_trainer_recovery_restores_accuracy_after_pruning():
    """Recovery through the distillation trainer: the teacher's logits are computed once, each step
    trains whole epochs and keeps its best validation epoch, and the pruned model gets its accuracy back."""
    from edge_kd.prune.schedule import recover_with_trainer

    torch.manual_seed(0)
    x, y = _colour_task(384, 0)
    vx, vy = _colour_task(128, 1)
    data = RecoveryData((x,), y, (vx,), vy)
    teacher = tiny_cnn(width=16)
    recover_with_trainer(teacher, None, data, RecoveryConfig(epochs=8, lr=1e-2, device="cpu"))
    assert data.evaluate(teacher) > 0.9
    config = PruneConfig(goal="macs", amount=0.7, steps=2, round_to=1)
    bare = run_schedule(teacher, (torch.from_numpy(x[:1]),), config, recovery=RecoveryConfig(epochs=0, bn_batches=0),
                        recovery_data=data, evaluate=data.evaluate)
    # BatchNorm re-estimation alone (no gradient step) already recovers much of what pruning lost.
    recalibrated = run_schedule(teacher, (torch.from_numpy(x[:1]),), config, recovery=RecoveryConfig(epochs=0),
                                recovery_data=data, evaluate=data.evaluate)
    assert recalibrated.steps[-1].accuracy > bare.steps[-1].accuracy + 0.1, (recalibrated.steps[-1].accuracy,
                                                                            bare.steps[-1].accuracy)
    healed = run_schedule(teacher, (torch.from_numpy(x[:1]),), config, teacher=teacher, recovery_data=data,
                          recovery=RecoveryConfig(epochs=5, lr=5e-3, alpha=0.5, device="cpu", bn_batches=0),
                          evaluate=data.evaluate)
    assert healed.steps[-1].macs == bare.steps[-1].macs  # same architecture, only the weights differ
    last = healed.steps[-1]
    assert last.recovery["epochs"] == 5 and 1 <= last.recovery["best_epoch"] <= 5
    assert last.accuracy > 0.85 and last.accuracy > bare.steps[-1].accuracy + 0.1, (last.accuracy, bare.steps[-1].accuracy)
    # the best validation epoch's weights are the ones kept (evaluate() reads the same validation rows)
    assert abs(last.accuracy - last.recovery["best_val_metric"]) < 1e-6
    assert last.recovery["best_val_metric"] == max(h["val_accuracy"] for h in last.recovery["history"])


def test_progressive_schedule_short_steps_long_final_recovery_with_cpu_time(monkeypatch):
    """Many small steps, one epoch of recovery each, a longer final recovery; every step and every
    recovery epoch records its CPU time, and the teacher's logits are computed once."""
    import edge_kd.prune.schedule as schedule

    x, y = _colour_task(96, 0)
    vx, vy = _colour_task(32, 1)
    data = RecoveryData((x,), y, (vx,), vy)
    calls, logits_calls = [], []
    real = schedule.teacher_logits
    monkeypatch.setattr(schedule, "teacher_logits", lambda *a, **kw: logits_calls.append(1) or real(*a, **kw))
    result = run_schedule(tiny_cnn(width=16), (torch.from_numpy(x[:1]),),
                          PruneConfig(goal="macs", amount=0.6, steps=4, round_to=1), recovery_data=data,
                          recovery=RecoveryConfig(epochs=1, final_epochs=3, batch_size=32, device="cpu"),
                          evaluate=data.evaluate, on_step=lambda r, m: calls.append(r.step))
    assert calls == [0, 1, 2, 3, 4] and len(logits_calls) == 1
    assert [s.recovery["epochs"] for s in result.steps[1:]] == [1, 1, 1, 3]
    assert [len(s.recovery["history"]) for s in result.steps[1:]] == [1, 1, 1, 3]
    assert all(s.cpu_seconds > 0 for s in result.steps)
    assert all(s.cpu_seconds >= s.recovery["cpu_seconds"] > 0 for s in result.steps[1:])
    d = result.to_dict()
    assert d["recovery"]["final_epochs"] == 3 and d["recovery"]["epochs_per_step"] == 1
    assert d["recovery"]["teacher_logits_cpu_seconds"] >= 0
    assert d["cpu_seconds"] == pytest.approx(sum(s["cpu_seconds"] for s in d["steps"])
                                             + d["recovery"]["teacher_logits_cpu_seconds"], abs=0.05)
    # each step's macs follow the even split of the ORIGINAL count
    for k, s in enumerate(result.steps[1:], start=1):
        assert s.macs_ratio <= 1 - 0.6 * k / 4 + 1e-6


def test_recovery_data_from_image_folder_reads_batches_lazily():
    from pathlib import Path

    from edge_kd.data import load_image_list

    fix = Path(__file__).resolve().parents[2] / "fixtures" / "images"
    train = load_image_list(fix, "train", size=32)
    val = load_image_list(fix, "val", size=32, label_names=train.label_names)
    data = RecoveryData.from_dataset(train, slice(None), None, val=val)
    assert len(data.train_inputs[0]) == len(train) and len(data.val_inputs[0]) == len(val)
    assert not isinstance(data.train_inputs[0], np.ndarray)  # rows, not a float32 copy of the set
    np.testing.assert_array_equal(data.train_inputs[0][np.array([2, 0])], train.inputs([2, 0])[0])
    model = tiny_cnn(num_classes=train.num_classes)
    rec = recover_with_trainer(model, teacher_logits(model, data), data,
                               RecoveryConfig(epochs=1, batch_size=4, device="cpu"))
    assert rec["epochs"] == 1 and 0 <= rec["best_val_metric"] <= 1


def test_batchnorm_recalibration_restores_the_statistics_of_the_data():
    from edge_kd.prune.schedule import recalibrate_batchnorm

    model = tiny_cnn(width=8).eval()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns, "tiny_cnn must have BatchNorm for this test"
    data = _random_data(48)
    x = torch.from_numpy(data.train_inputs[0])
    first = bns[0]
    with torch.no_grad():
        first.running_mean.fill_(5.0)
        first.running_var.fill_(100.0)
        # What the first BN sees: the output of the conv before it, over every row.
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        expected = conv(x).mean(dim=(0, 2, 3))
    used = recalibrate_batchnorm(model, data.batches(16)(), max_batches=10)
    assert used == 3  # 48 rows in batches of 16: every batch, fewer than the cap
    assert not model.training  # left as it was
    torch.testing.assert_close(first.running_mean, expected, atol=1e-4, rtol=1e-4)
    assert float(first.running_var.max()) < 100.0
    assert recalibrate_batchnorm(torch.nn.Linear(4, 2), iter([((torch.rand(2, 4),), None)]), 5) == 0


def test_each_pruning_step_recalibrates_batchnorm_before_recovery():
    x = TINY_SPECS["cnn"].example_inputs()
    result = run_schedule(tiny_cnn(), x, PruneConfig(goal="macs", amount=0.5, steps=2, round_to=1),
                          recovery_data=_random_data(), recovery=RecoveryConfig(max_batches=1, batch_size=8, bn_batches=2),
                          evaluate=lambda m: 0.5)
    assert [s.recovery.get("bn_recalibration_batches") for s in result.steps] == [None, 2, 2]
    off = run_schedule(tiny_cnn(), x, PruneConfig(goal="macs", amount=0.5, steps=1, round_to=1),
                       recovery_data=_random_data(), recovery=RecoveryConfig(max_batches=1, batch_size=8, bn_batches=0))
    assert "bn_recalibration_batches" not in off.steps[1].recovery
    with pytest.raises(InputError, match="bn_batches"):
        RecoveryConfig(bn_batches=-1)


class _Recorder(torch.nn.Module):
    """Wraps a model and keeps every input batch it was called on (training only for the student)."""

    def __init__(self, inner, only_training=False):
        super().__init__()
        self.inner, self.only_training, self.seen = inner, only_training, []

    def forward(self, x):
        if self.training or not self.only_training:
            self.seen.append(x.detach().clone())
        return self.inner(x)


def test_augmented_recovery_teacher_scores_the_very_views_the_student_trains_on():
    from pathlib import Path

    from edge_kd.data import load_image_list

    fix = Path(__file__).resolve().parents[2] / "fixtures" / "images"
    train = load_image_list(fix, "train", size=32)
    val = load_image_list(fix, "val", size=32, label_names=train.label_names)
    data = RecoveryData.from_dataset(train, slice(None), None, val=val)
    assert data.views is not None
    rows = np.arange(min(4, len(train)))
    a, b = (data.views(rows, np.random.default_rng(s))[0] for s in (0, 1))
    plain = torch.from_numpy(train.inputs(rows)[0])
    assert a.shape == plain.shape and not torch.equal(a, b) and not torch.equal(a, plain)  # random views
    torch.manual_seed(0)
    teacher = _Recorder(tiny_cnn(num_classes=train.num_classes)).eval()
    student = _Recorder(tiny_cnn(num_classes=train.num_classes), only_training=True)
    rec = recover_with_trainer(student, None, data, RecoveryConfig(epochs=2, batch_size=4, device="cpu", augment=True),
                               teacher=teacher)
    assert rec["epochs"] == 2
    assert len(teacher.seen) == len(student.seen) > 0
    for t, s in zip(teacher.seen, student.seen):
        torch.testing.assert_close(t, s)  # the same view, not the unaugmented rows
    assert not any(torch.equal(s, plain[:len(s)]) for s in student.seen)


def test_augmented_recovery_needs_views_and_a_teacher():
    data = _random_data()  # arrays: no random views
    with pytest.raises(InputError, match="random views"):
        recover_with_trainer(tiny_cnn(), None, data, RecoveryConfig(epochs=1, augment=True), teacher=tiny_cnn())
    with pytest.raises(InputError, match="random views"):
        run_schedule(tiny_cnn(), TINY_SPECS["cnn"].example_inputs(), PruneConfig(goal="macs", amount=0.5, round_to=1),
                     recovery_data=data, recovery=RecoveryConfig(augment=True))


def test_trainer_refuses_cached_teacher_outputs_with_random_views():
    from edge_kd.distill.trainer import DistillData

    x, y = np.zeros((4, 3), np.float32), np.zeros(4, np.int64)
    with pytest.raises(InputError, match="teacher model"):
        DistillData((x,), y, teacher=np.zeros((4, 2), np.float32), views=lambda rows, gen: [torch.zeros(len(rows), 3)])


def test_an_interrupted_schedule_resumes_after_its_last_checkpointed_step(tmp_path):
    """The build's prune stage keeps the model after every step (edge_kd.stages.prune.StepCheckpoints); a
    schedule stopped after step 2 of 4 continues from that model and ends as an uninterrupted run does."""
    from edge_kd.stages.prune import StepCheckpoints

    x, y = _colour_task(96, 0)
    vx, vy = _colour_task(32, 1)
    data = RecoveryData((x,), y, (vx,), vy)
    spec = TINY_SPECS["cnn"]
    config = PruneConfig(goal="macs", amount=0.6, steps=4, round_to=1)
    recovery = RecoveryConfig(epochs=1, final_epochs=2, batch_size=32, device="cpu")
    torch.manual_seed(0)
    model = spec.build()
    full = run_schedule(model, (torch.from_numpy(x[:1]),), config, recovery_data=data, recovery=recovery,
                        evaluate=data.evaluate)

    checkpoints = StepCheckpoints(tmp_path / "ckpt", "key-1", spec)

    def stop_after_two(report, m):
        checkpoints.save(report, m)
        if report.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_schedule(model, (torch.from_numpy(x[:1]),), config, recovery_data=data, recovery=recovery,
                     evaluate=data.evaluate, on_step=stop_after_two)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step-2.json", "step-2.safetensors", "steps.json"]
    assert StepCheckpoints(tmp_path / "ckpt", "other-inputs", spec).load() is None
    point = StepCheckpoints(tmp_path / "ckpt", "key-1", spec).load()
    assert [s.step for s in point.steps] == [0, 1, 2] and point.steps[2].goal_met is True
    seen = []
    resumed = run_schedule(model, (torch.from_numpy(x[:1]),), config, recovery_data=data, recovery=recovery,
                           evaluate=data.evaluate, on_step=lambda r, m: seen.append(r.step), resume=point)
    assert seen == [3, 4] and [s.step for s in resumed.steps] == [0, 1, 2, 3, 4]
    assert [s.macs for s in resumed.steps] == [s.macs for s in full.steps]  # the same architecture at every step
    assert resumed.goal_met and resumed.steps[-1].recovery["epochs"] == 2
    assert resumed.steps[2].accuracy == point.steps[2].accuracy  # the done steps are not redone
    (tmp_path / "ckpt" / "steps.json").write_text("{not json")
    assert StepCheckpoints(tmp_path / "ckpt", "key-1", spec).load() is None
    StepCheckpoints(tmp_path / "ckpt", "key-1", spec).clear()
    assert not (tmp_path / "ckpt").exists()


def test_a_latency_schedule_does_not_resume():
    from edge_kd.prune.schedule import ResumePoint, StepReport

    x = TINY_SPECS["cnn"].example_inputs()
    point = ResumePoint([StepReport(0, None, 0.0, 1, 1, 1.0, p50_ms=1.0)], tiny_cnn())
    with pytest.raises(InputError, match="cannot resume"):
        run_schedule(tiny_cnn(), x, PruneConfig(goal="latency", amount=0.5, steps=2, round_to=1),
                     latency=lambda m: 1.0, resume=point)
