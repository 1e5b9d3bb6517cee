"""Teacher outputs are computed once, memory-mapped, and keyed by teacher weights and data."""
import numpy as np
import pytest
import torch
from torch import nn

from edge_kd.distill.cache import TeacherCache, arrays_fingerprint, teacher_batches, weights_fingerprint
from edge_kd.errors import InputError


def _teacher(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).eval()


def test_compute_once_then_memory_map(tmp_path):
    teacher = _teacher()
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    cache = TeacherCache(tmp_path)
    key = cache.key(weights_fingerprint(teacher), arrays_fingerprint(x), "logits")
    calls = []

    def batches():
        calls.append(1)
        return teacher_batches(teacher, (x,), batch_size=3)

    first = cache.get_or_compute(key, batches, n_rows=10)
    again = cache.get_or_compute(key, batches, n_rows=10)
    assert len(calls) == 1
    assert isinstance(again, np.memmap) and again.shape == (10, 3)
    with torch.no_grad():
        assert np.allclose(np.asarray(again), teacher(torch.from_numpy(x)).numpy(), atol=1e-6)
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not list(tmp_path.glob(".tmp-*"))


def test_key_changes_with_weights_and_data():
    a, b = _teacher(0), _teacher(1)
    assert weights_fingerprint(a) == weights_fingerprint(_teacher(0))
    assert weights_fingerprint(a) != weights_fingerprint(b)
    x = np.zeros((2, 4), np.float32)
    y = x.copy()
    y[1, 1] = 1e-3
    assert arrays_fingerprint(x) != arrays_fingerprint(y)
    assert arrays_fingerprint(np.array(["a", "b"], dtype=object)) != arrays_fingerprint(np.array(["ab", ""], dtype=object))


def test_wrong_row_count_leaves_no_entry(tmp_path):
    cache = TeacherCache(tmp_path)
    with pytest.raises(InputError, match="produced 4 rows for a data set of 5"):
        cache.get_or_compute("k", lambda: iter([np.zeros((4, 2))]), n_rows=5)
    assert not cache.has("k") and not list(tmp_path.glob("*.npy"))
