"""Iterative schedule: even steps toward a MACs goal with recovery, and latency goals met or missed."""
import pytest
import torch

from edge_kd.errors import InputError
from edge_kd.prune.pruner import PruneConfig
from edge_kd.prune.schedule import RecoveryConfig, recover, run_schedule
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
