from pathlib import Path

import numpy as np
import pytest

from edge_kd.data import load_image_list, parse_data_spec
from edge_kd.data.images import IMAGENET_MEAN, IMAGENET_STD, scale_pixels
from edge_kd.errors import InputError

ROOT = Path(__file__).resolve().parents[2] / "fixtures" / "images"


def test_list_file_layout_fine_and_coarse():
    ds = load_image_list(ROOT, "train", label="fine", size=32)
    assert len(ds) == 12 and ds.num_classes == 3
    assert ds.label_names == ["Red-Apple", "Green-Apple", "Banana"]
    coarse = load_image_list(ROOT, "train", label="coarse", size=32)
    assert coarse.label_names == ["Apple", "Banana"] and coarse.task == "binary"
    (x,) = ds.inputs([0, 5])
    assert x.shape == (2, 3, 32, 32) and x.dtype == np.float32


def test_tf_and_imagenet_scaling_golden():
    px = np.array([[[[0, 127, 255]]]], dtype=np.uint8)
    tf = scale_pixels(px, "tf")[0, :, 0, 0]
    assert np.allclose(tf, [-127 / 128, 0.0, 1.0])
    im = scale_pixels(px, "imagenet")[0, :, 0, 0]
    assert np.allclose(im, (np.array([0, 127, 255]) / 255 - IMAGENET_MEAN) / IMAGENET_STD)


def test_colours_survive_decoding():
    ds = load_image_list(ROOT, "val", size=24)
    px = ds.pixels().astype(float).mean(axis=(1, 2))
    red = px[ds.labels == 0].mean(0)
    assert red[0] > 150 and red[1] < 100  # red patches stay red: channels are RGB in order


def test_disk_cache_roundtrip(tmp_path):
    ds = load_image_list(ROOT, "test", size=16, cache_dir=tmp_path)
    first = ds.inputs()[0]
    files = list(tmp_path.glob("images-*.npy"))
    assert len(files) == 1
    again = load_image_list(ROOT, "test", size=16, cache_dir=tmp_path)
    assert again._store.loaded.all()  # served from the cache file, nothing decoded
    assert np.array_equal(again.inputs()[0], first)


def test_subset_and_preprocessing_view_share_pixels():
    ds = load_image_list(ROOT, "train", size=16)
    sub = ds.subset([3, 7])
    assert np.array_equal(sub.pixels(), ds.pixels([3, 7]))
    im = ds.with_preprocessing("imagenet")
    assert im._store is ds._store and im.preprocessing == "imagenet"


def test_errors(tmp_path):
    with pytest.raises(InputError, match="no split 'nope'.*found: .*test.*train"):
        load_image_list(ROOT, "nope")
    with pytest.raises(InputError, match="does not exist"):
        load_image_list(tmp_path / "missing", "train")
    (tmp_path / "train.txt").write_text("")
    with pytest.raises(InputError, match="split is empty"):
        load_image_list(tmp_path, "train")
    (tmp_path / "train.txt").write_text("a.jpg, 0\nb.jpg, 1\n")
    with pytest.raises(InputError, match="a.jpg: image listed in split 'train' does not exist"):
        load_image_list(tmp_path, "train")
    with pytest.raises(InputError, match="preprocessing"):
        load_image_list(ROOT, "train", preprocessing="caffe")


def test_class_folder_layout(tmp_path):
    from PIL import Image

    for name in ("cat", "dog"):
        (tmp_path / "train" / name).mkdir(parents=True)
        Image.new("RGB", (10, 10), (10, 20, 30)).save(tmp_path / "train" / name / "a.png")
    ds = parse_data_spec(f"images:{tmp_path}?split=train&size=8")
    assert ds.label_names == ["cat", "dog"] and ds.inputs()[0].shape == (2, 3, 8, 8)
    swapped = load_image_list(tmp_path, "train", size=8, label_names=["dog", "cat"])
    assert swapped.labels.tolist() == [1, 0]


def test_fingerprint_follows_the_photos_not_their_folder_or_mtime(tmp_path):
    import os
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(ROOT, copy)
    for f in copy.rglob("*"):
        os.utime(f, (1_000_000_000, 1_000_000_000))
    original = load_image_list(ROOT, "train", size=16)
    moved = load_image_list(copy, "train", size=16)
    assert moved.fingerprint() == original.fingerprint()   # a CI checkout keeps its cached teacher
    photo = moved._store.paths[0]
    data = bytearray(photo.read_bytes())
    data[-3] ^= 0xFF
    photo.write_bytes(bytes(data))
    assert load_image_list(copy, "train", size=16).fingerprint() != original.fingerprint()
