import binascii
from pathlib import Path

import numpy as np
import pytest

from edge_kd.data import TabularSchema, load_ctr_csv, load_tabular_csv, train_val_test_split
from edge_kd.data.tabular import MISSING_CATEGORY, TabularPreprocessor, stable_hash
from edge_kd.errors import InputError

FIX = Path(__file__).resolve().parents[2] / "fixtures"
CATS = ("Month", "VisitorType", "Weekend", "OperatingSystems", "Browser", "Region", "TrafficType")


def test_online_shoppers_fixture_binary_with_guessed_positive():
    ds = load_tabular_csv(FIX / "shoppers_small.csv", TabularSchema(label="Revenue", categorical=CATS))
    assert ds.task == "binary" and ds.label_names == ["FALSE", "TRUE"]
    assert ds.class_counts().tolist() == [32, 8]
    assert ds.input_names == ("numeric", "categorical")
    num, cat = ds.inputs()
    assert num.shape == (40, 10) and num.dtype == np.float32
    assert cat.shape == (40, 7) and cat.dtype == np.int64
    assert np.allclose(num.mean(0), 0, atol=1e-5)  # standardised on these rows
    assert (cat >= 1).all()  # every value was seen when fitting: code 0 is unused
    assert ds.cardinalities[CATS.index("Weekend")] == 3  # FALSE, TRUE + the unknown code


def _write(tmp_path, text):
    p = tmp_path / "t.csv"
    p.write_text(text)
    return p


def test_missing_values_median_and_missing_category(tmp_path):
    p = _write(tmp_path, "a,b,y\n1,red,yes\n,blue,no\n3,,no\n5,red,yes\n")
    ds = load_tabular_csv(p, TabularSchema(label="y"))
    assert ds.numeric_names == ("a",) and ds.categorical_names == ("b",)
    assert ds.label_names == ["no", "yes"] and ds.labels.tolist() == [1, 0, 0, 1]
    prep = ds.preprocessor
    assert prep.medians == (3.0,)
    # a = [1, 3 (imputed), 3, 5]: mean 3, std sqrt(2)
    assert np.allclose(ds.inputs()[0][:, 0], np.array([-2, 0, 0, 2]) / np.sqrt(2))
    assert prep.vocabularies == ((MISSING_CATEGORY, "blue", "red"),)
    assert ds.inputs()[1][:, 0].tolist() == [3, 2, 1, 3]


def test_statistics_are_fitted_on_train_only():
    ds = load_tabular_csv(FIX / "shoppers_small.csv", TabularSchema(label="Revenue", categorical=CATS))
    s = train_val_test_split(ds, val=0.25, test=0.25, seed=0)
    assert s.val.preprocessor is s.train.preprocessor is s.test.preprocessor
    train_num = s.train.raw_numeric[:, 0]
    assert np.isclose(s.train.preprocessor.means[0], train_num.mean())
    assert not np.isclose(s.train.preprocessor.means[0], ds.raw_numeric[:, 0].mean())


def test_unseen_category_maps_to_zero():
    prep = TabularPreprocessor(("x",), ("c",), (0.0,), (0.0,), (1.0,), (("a", "b"),))
    _, codes = prep.transform(np.zeros((2, 1)), np.array([["b"], ["zzz"]], dtype=object))
    assert codes[:, 0].tolist() == [2, 0]
    assert TabularPreprocessor.from_dict(prep.to_dict()) == prep


def test_label_and_schema_errors(tmp_path):
    p = _write(tmp_path, "a,y\n1,x\n2,x\n")
    with pytest.raises(InputError, match="single value"):
        load_tabular_csv(p, TabularSchema(label="y"))
    with pytest.raises(InputError, match=r"label column 'Revenue' does not exist; columns are: a, y"):
        load_tabular_csv(p, TabularSchema(label="Revenue"))
    p = _write(tmp_path, "a,y\n1,x\nfoo,z\n")
    with pytest.raises(InputError, match=r"row 3: numeric column 'a' has 'foo'"):
        load_tabular_csv(p, TabularSchema(label="y", numeric=("a",)))
    with pytest.raises(InputError, match="both numeric and categorical"):
        TabularSchema(label="y", numeric=("a",), categorical=("a",))
    with pytest.raises(InputError, match="positive label 'maybe' does not occur"):
        load_tabular_csv(p, TabularSchema(label="y", positive="maybe"))


def test_multiclass_and_one_vs_rest(tmp_path):
    p = _write(tmp_path, "a,y\n1,x\n2,y\n3,z\n")
    assert load_tabular_csv(p, TabularSchema(label="y")).task == "classification"
    ovr = load_tabular_csv(p, TabularSchema(label="y", positive="z"))
    assert ovr.task == "binary" and ovr.label_names == ["not z", "z"] and ovr.labels.tolist() == [0, 0, 1]


def test_criteo_hashing():
    ds = load_ctr_csv(FIX / "criteo_small.txt", buckets=100)
    assert ds.task == "binary" and ds.label_names == ["0", "1"] and ds.class_counts().tolist() == [25, 5]
    num, cat = ds.inputs()
    assert num.shape == (30, 13) and cat.shape == (30, 26)
    assert cat.min() >= 0 and cat.max() < 100
    assert ds.cardinalities == (100,) * 26
    # First row's C1 is 05db9164: a stable CRC32 bucket, not Python's salted hash().
    assert cat[0, 0] == stable_hash("C1", "05db9164", 100) == binascii.crc32(b"C1\x0005db9164") % 100 == 93
    assert np.isfinite(num).all()
