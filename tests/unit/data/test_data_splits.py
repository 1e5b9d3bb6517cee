import numpy as np
import pytest

from edge_kd.data import ArrayDataset, calibration_sample, stratified_split_indices, train_val_test_split
from edge_kd.errors import InputError


def _ds(counts):
    labels = np.concatenate([np.full(c, k) for k, c in enumerate(counts)]).astype(np.int64)
    x = np.arange(len(labels), dtype=np.float32)[:, None]
    return ArrayDataset([x], ["x"], labels, [f"c{k}" for k in range(len(counts))])


def test_stratified_split_is_deterministic_and_proportional():
    ds = _ds([50, 30, 20])
    a = stratified_split_indices(ds.labels, [0.7, 0.1, 0.2], seed=3)
    b = stratified_split_indices(ds.labels, [0.7, 0.1, 0.2], seed=3)
    c = stratified_split_indices(ds.labels, [0.7, 0.1, 0.2], seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    # Per class exactly its share: 35/5/10, 21/3/6, 14/2/4.
    assert [np.bincount(ds.labels[p], minlength=3).tolist() for p in a] == [[35, 21, 14], [5, 3, 2], [10, 6, 4]]
    allidx = np.concatenate(a)
    assert sorted(allidx.tolist()) == list(range(100))


def test_tiny_class_stays_in_train():
    labels = np.array([0] * 10 + [1])
    train, val, test = stratified_split_indices(labels, [0.7, 0.1, 0.2], seed=0)
    assert 10 in train.tolist()


def test_train_val_test_split_sizes_and_bad_fractions():
    s = train_val_test_split(_ds([40, 40]), val=0.25, test=0.25, seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (40, 20, 20)
    with pytest.raises(InputError, match="split fractions"):
        train_val_test_split(_ds([4, 4]), val=0.6, test=0.5)


def test_calibration_sample_is_stratified_and_seeded():
    ds = _ds([600, 300, 100])
    idx = calibration_sample(ds, 100, seed=0)
    assert len(idx) == 100 == len(set(idx.tolist()))
    assert np.bincount(ds.labels[idx]).tolist() == [60, 30, 10]
    assert np.array_equal(idx, calibration_sample(ds, 100, seed=0))
    assert not np.array_equal(idx, calibration_sample(ds, 100, seed=1))


def test_calibration_sample_covers_every_class_and_caps():
    ds = _ds([97, 2, 1])
    idx = calibration_sample(ds, 10, seed=0)
    counts = np.bincount(ds.labels[idx], minlength=3)
    assert counts.sum() == 10 and (counts >= 1).all()
    assert calibration_sample(ds, 500).tolist() == list(range(100))
    with pytest.raises(InputError, match=">= 1"):
        calibration_sample(ds, 0)
