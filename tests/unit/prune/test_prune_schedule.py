"""Iterative schedule: even steps toward a MACs goal with recovery, and latency goals met or missed."""
import pytest
import torch

from edge_kd.errors import InputError
from edge_kd.prune.pruner import PruneConfig
from edge_kd.prune.schedule import RecoveryConfig, RecoveryData, recover, run_schedule
from edge_kd.testing.tiny_models import TINY_SPECS, tiny_cnn


def _data(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    data = [((torch.rand(8, 3, 32, 32, generator=g),), torch.randint(0, 4, (8,), generator=g)) for _ in range(n)]
    return lambda: iter(data)


def test_two_steps_with_recovery():
    x = TINY_SPECS["cnn"].example_inputs()
    evals = []
    result = run_schedule(tiny_cnn(), x, PruneConfig(goal="macs", amount=0.5, steps=2, round_to=1),
                          train_batches=_data(), recovery=RecoveryConfig(max_batches=2),
                          evaluate=lambda m: evals.append(1) or 0.5)
    assert [s.step for s in result.steps] == [0, 1, 2]
    assert result.steps[1].macs_ratio <= 0.75 + 1e-6 and result.steps[2].macs_ratio <= 0.5
    assert result.steps[1].macs_ratio > result.steps[2].macs_ratio
    assert result.steps[1].recovery["batches"] == 2
    assert result.goal_met and result.missed_by is None
    assert len(evals) == 3 + 2  # after each step, plus before recovery on the two pruning steps


def test_recovery_moves_student_toward_teacher():
    teacher = tiny_cnn(width=16)
    student = tiny_cnn(width=16)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    data = _data(4)
    x = torch.cat([b[0][0] for b in data()])

    def gap():
        with torch.no_grad():
            return (student(x) - teacher(x)).abs().mean().item()

    before = gap()
    recover(student, teacher, data, RecoveryConfig(epochs=5, lr=1e-2, alpha=1.0))
    assert gap() < before


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
    bare = run_schedule(teacher, (torch.from_numpy(x[:1]),), config, recovery=RecoveryConfig(epochs=0),
                        recovery_data=data, evaluate=data.evaluate)
    healed = run_schedule(teacher, (torch.from_numpy(x[:1]),), config, teacher=teacher, recovery_data=data,
                          recovery=RecoveryConfig(epochs=5, lr=5e-3, alpha=0.5, device="cpu"),
                          evaluate=data.evaluate)
    assert healed.steps[-1].macs == bare.steps[-1].macs  # same architecture, only the weights differ
    last = healed.steps[-1]
    assert last.recovery["epochs"] == 5 and 1 <= last.recovery["best_epoch"] <= 5
    assert last.accuracy > 0.85 and last.accuracy > bare.steps[-1].accuracy + 0.1, (last.accuracy, bare.steps[-1].accuracy)
    # the best validation epoch's weights are the ones kept (evaluate() reads the same validation rows)
    assert abs(last.accuracy - last.recovery["best_val_metric"]) < 1e-6
    assert last.recovery["best_val_metric"] == max(h["val_accuracy"] for h in last.recovery["history"])
