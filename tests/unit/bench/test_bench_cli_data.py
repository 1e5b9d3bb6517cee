"""``edge-kd bench`` helpers: --data npz:PATH loading and --input random inputs."""
from __future__ import annotations

import numpy as np
import pytest

from edge_kd.cli.bench import _random_inputs, load_npz_samples
from edge_kd.errors import InputError


def test_npz_samples_are_batch_one_rows(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x0=np.arange(12, dtype=np.float32).reshape(3, 4), x1=np.zeros((3, 2), np.int64), y=[2, 0, 1])
    samples = load_npz_samples(f"npz:{path}")
    assert len(samples) == 3
    (a, b), y = samples[1]
    assert a.shape == (1, 4) and a[0, 0] == 4.0 and b.shape == (1, 2) and y == 0
    assert len(load_npz_samples(f"npz:{path}", limit=2)) == 2


def test_npz_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="expected npz:PATH"):
        load_npz_samples("csv:x.csv")
    with pytest.raises(InputError, match="no such file"):
        load_npz_samples(f"npz:{tmp_path / 'missing.npz'}")
    np.savez(tmp_path / "noy.npz", x0=np.zeros((2, 3)))
    with pytest.raises(InputError, match="needs arrays x0.*and y; found x0"):
        load_npz_samples(f"npz:{tmp_path / 'noy.npz'}")
    np.savez(tmp_path / "len.npz", x0=np.zeros((2, 3)), y=[1, 2, 3])
    with pytest.raises(InputError, match="x0 has 2 samples but y has 3"):
        load_npz_samples(f"npz:{tmp_path / 'len.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(InputError, match="junk.npz"):
        load_npz_samples(f"npz:{tmp_path / 'junk.npz'}")
    good = (tmp_path / "d.npz")
    np.savez(good, x0=np.zeros((2, 3)), y=[1, 2])
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:150])  # a zip cut short
    with pytest.raises(InputError, match="cut.npz"):
        load_npz_samples(f"npz:{tmp_path / 'cut.npz'}")


def test_random_inputs_follow_the_specs():
    image, ids = _random_inputs(["image:1x3x8x8:float32", "ids:1x16:int64:30522"])
    assert image.shape == (1, 3, 8, 8) and image.dtype == np.float32 and 0 <= image.min() and image.max() < 1
    assert ids.shape == (1, 16) and ids.dtype == np.int64 and 0 <= ids.min() and ids.max() < 30522
    with pytest.raises(InputError, match="input spec"):
        _random_inputs(["bad"])


def test_data_spec_samples_are_labelled_batch_one_rows():
    """bench --data takes the data specs quantize --calib/--eval take, not only npz."""
    from pathlib import Path

    from edge_kd.cli.bench import _labelled_samples

    fixtures = Path(__file__).resolve().parents[2] / "fixtures"
    spec = f"tabular:{fixtures}/shoppers_small.csv?label=Revenue&categorical=Month,VisitorType,Weekend"
    samples = _labelled_samples(spec, 10)
    assert len(samples) == 10
    inputs, label = samples[0]
    assert all(a.shape[0] == 1 for a in inputs) and int(label) in (0, 1)
    with pytest.raises(InputError, match="tokenize"):  # text needs a model to tokenize: say so
        _labelled_samples(f"csv:{fixtures}/intents_small.csv?text=instruction&label=intent", 5)
