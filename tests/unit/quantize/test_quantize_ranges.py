"""Golden values for the range methods, quantization parameters and calibration sampling."""
from __future__ import annotations

import numpy as np
import pytest

from edge_kd.errors import InputError
from edge_kd.quantize.calibration import (RangeStats, StreamingHistogram, check_calibration, fake_quantize,
                                          load_npz_calibration, qparams, select_calibration, stratified_indices)


# ---- quantization parameters --------------------------------------------------------------------
def test_qparams_asymmetric_golden():
    assert qparams(0.0, 2.55, qmin=0, qmax=255) == pytest.approx((0.01, 0))
    scale, zp = qparams(-1.0, 1.0)
    assert scale == pytest.approx(2.0 / 255.0)
    assert zp == 0  # -128 - round(-127.5) with round-half-even
    scale, zp = qparams(0.5, 3.0)  # widened to include 0: [0, 3]
    assert scale == pytest.approx(3.0 / 255.0) and zp == -128


def test_qparams_symmetric_golden():
    scale, zp = qparams(-0.5, 2.0, symmetric=True)
    assert scale == pytest.approx(2.0 / 127.5) and zp == 0


def test_fake_quantize_clips_and_rounds():
    scale, zp = qparams(0.0, 2.55)
    out = fake_quantize(np.array([-1.0, 0.0, 1.0, 100.0], np.float32), scale, zp)
    assert out == pytest.approx([0.0, 0.0, 1.0, 2.55], abs=1e-6)


# ---- each range method on small arrays ----------------------------------------------------------
def stats_of(*batches, bins=2048):
    s = RangeStats(bins=bins)
    for b in batches:
        s.update(np.asarray(b, np.float32))
    return s


def test_minmax_golden():
    assert stats_of([-1.0, 0.5], [2.0, 0.0]).compute("minmax") == (-1.0, 2.0)


def test_moving_average_golden():
    s = RangeStats(averaging_constant=0.5)
    s.update(np.array([0.0, 1.0], np.float32))
    s.update(np.array([-2.0, 3.0], np.float32))
    # first batch sets (0, 1); then min 0 + 0.5 * (-2 - 0) = -1, max 1 + 0.5 * (3 - 1) = 2
    assert s.compute("moving_average") == pytest.approx((-1.0, 2.0))


def test_percentile_golden_one_sided():
    s = stats_of(np.arange(1001, dtype=np.float32))  # 0..1000, uniform
    lo, hi = s.compute("percentile", percentile=99.0)
    assert lo == 0.0
    assert hi == pytest.approx(990.0, abs=1.0)  # within one bin (1000 / 2048)


def test_percentile_golden_two_sided():
    s = stats_of(np.linspace(-1.0, 1.0, 20001, dtype=np.float32))
    lo, hi = s.compute("percentile", percentile=95.0)
    assert lo == pytest.approx(-0.9, abs=2e-3) and hi == pytest.approx(0.9, abs=2e-3)


def test_entropy_clips_sparse_tail():
    rng = np.random.default_rng(0)
    # dense mass in [0, 1] and a sparse tail up to 20: the KL search clips the tail
    data = np.concatenate([rng.uniform(0.0, 1.0, 20000), rng.uniform(1.0, 20.0, 20)]).astype(np.float32)
    s = stats_of(data)
    lo, hi = s.compute("entropy")
    assert lo == pytest.approx(0.0, abs=1e-3)
    assert 1.0 < hi < s.max
    assert hi == pytest.approx(9.007, abs=0.05)  # golden value of this deterministic input


def test_entropy_two_sided_is_symmetric_clip():
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.normal(0, 1, 20000), [-60.0, 60.0]]).astype(np.float32)
    lo, hi = stats_of(data).compute("entropy")
    assert lo == pytest.approx(-hi, rel=1e-6)
    assert 2.0 < hi < 20.0


def test_mse_keeps_uniform_range_and_clips_outliers():
    uniform = stats_of(np.linspace(0.0, 1.0, 10001, dtype=np.float32))
    assert uniform.compute("mse") == pytest.approx((0.0, 1.0), abs=1e-3)
    rng = np.random.default_rng(2)
    # 200k values in [0, 1] and one at 1.2: squared rounding error of the whole mass outweighs clipping
    # the single outlier (analytically 0.369 at 1.2 vs 0.297 at 1.0); the search lands near 1.0.
    data = np.concatenate([rng.uniform(0.0, 1.0, 200000), [1.2]]).astype(np.float32)
    lo, hi = stats_of(data).compute("mse")
    assert hi == pytest.approx(1.008, abs=0.005)  # golden: alpha 0.84 of the 1.2 maximum
    # a single far outlier costs more clipped than kept: MSE keeps it (unlike entropy)
    far = np.concatenate([rng.normal(0, 1, 20000), [200.0]]).astype(np.float32)
    assert stats_of(far).compute("mse")[1] > 150.0


def test_methods_never_exceed_observed_range():
    rng = np.random.default_rng(3)
    s = stats_of(rng.normal(0, 1, 5000), rng.normal(0, 3, 5000))
    for m in ("minmax", "moving_average", "percentile", "entropy", "mse"):
        lo, hi = s.compute(m)
        assert s.min <= lo <= hi <= s.max, m


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="unknown range method"):
        stats_of([1.0]).compute("kl")


# ---- streaming histogram ------------------------------------------------------------------------
def test_histogram_streams_with_fixed_memory_and_grows_range():
    h = StreamingHistogram(bins=64)
    h.update(np.linspace(0, 1, 1000))
    h.update(np.linspace(0, 10, 1000))
    h.update(np.array([-5.0]))
    assert h.counts.shape == (64,)
    assert h.counts.sum() == pytest.approx(2001)
    assert h.lo <= -5.0 and h.hi >= 10.0


def test_range_stats_ignores_inf_mask_sentinels_and_constant_tensor():
    s = stats_of([1.0, np.inf, -np.inf, 2.0, np.finfo(np.float32).min])
    assert s.compute("minmax") == (1.0, 2.0)
    assert s.summary()["sentinels"] == 3
    c = stats_of(np.full(10, 3.0))
    assert c.compute("percentile") == (3.0, 3.0)


# ---- sampling -----------------------------------------------------------------------------------
def test_stratified_indices_golden_and_every_class_present():
    assert stratified_indices([0, 0, 0, 1], 2, seed=0) == [2, 3]
    labels = [0] * 90 + [1] * 9 + [2]
    idx = stratified_indices(labels, 10, seed=0)
    assert len(idx) == 10 and {labels[i] for i in idx} == {0, 1, 2}
    assert stratified_indices(labels, 10, seed=0) == idx  # deterministic
    assert stratified_indices(labels, 10, seed=1) != idx


def test_stratified_indices_without_labels_and_all_rows():
    assert stratified_indices(None, 3, seed=0, total=10) == stratified_indices(None, 3, seed=0, total=10)
    assert stratified_indices([1, 2], 5) == [0, 1]


def test_select_calibration_keeps_labels_aligned():
    samples = [(np.full((1, 2), i, np.float32),) for i in range(20)]
    labels = [i % 4 for i in range(20)]
    plan = select_calibration(samples, labels, 8, seed=0)
    assert len(plan.calibration) == 8
    assert [int(s[0][0, 0]) % 4 for s in plan.calibration] == list(plan.labels)


# ---- bad input ----------------------------------------------------------------------------------
EXAMPLE = (np.zeros((1, 3), np.float32),)


def good(n=8):
    return [(np.ones((1, 3), np.float32),) for _ in range(n)]


def test_check_calibration_accepts_and_casts_float64():
    out = check_calibration([(np.ones((1, 3)),)] * 8, EXAMPLE)
    assert out[0][0].dtype == np.float32


@pytest.mark.parametrize("samples, message", [
    ([], "empty"),
    (good(3), "too few"),
    ([(np.ones((1, 4), np.float32),)] * 8, "shape"),
    ([(np.ones((1, 3), np.int64),)] * 8, "dtype"),
    ([(np.array([[1.0, np.nan, 0.0]], np.float32),)] + good(7), "NaN"),
    ([(np.ones((1, 3), np.float32), np.ones((1, 3), np.float32))] * 8, "input"),
])
def test_check_calibration_rejects(samples, message):
    with pytest.raises(InputError, match=message):
        check_calibration(samples, EXAMPLE, source="calib.npz")


def test_load_npz_calibration(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, x0=np.ones((5, 3), np.float32), y=np.arange(5))
    samples, labels = load_npz_calibration(str(path))
    assert len(samples) == 5 and samples[0][0].shape == (1, 3) and list(labels) == [0, 1, 2, 3, 4]
    bad = tmp_path / "bad.npz"
    np.savez(bad, a=np.ones(3))
    with pytest.raises(InputError, match="x0"):
        load_npz_calibration(str(bad))
    with pytest.raises(InputError, match="does not exist"):
        load_npz_calibration(str(tmp_path / "missing.npz"))
