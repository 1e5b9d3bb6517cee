import sys
from pathlib import Path

import numpy as np
import pytest

from edge_kd.data import ArrayDataset, TabularDataset, TextDataset, parse_data_spec
from edge_kd.data.spec import split_spec
from edge_kd.errors import InputError

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def test_split_spec():
    assert split_spec("csv:a b.csv?text=t&label=l") == ("csv", "a b.csv", {"text": "t", "label": "l"})
    with pytest.raises(InputError, match="KIND one of csv, images, tabular, ctr, npz"):
        split_spec("parquet:x")
    with pytest.raises(InputError, match="given twice"):
        split_spec("csv:x?text=a&text=b")


def test_each_kind_loads_from_fixtures():
    assert isinstance(parse_data_spec(f"csv:{FIX}/intents_small.csv?text=instruction&label=intent"), TextDataset)
    ds = parse_data_spec("tabular:shoppers_small.csv?label=Revenue&categorical=Month,VisitorType,Weekend",
                         base_dir=FIX)
    assert isinstance(ds, TabularDataset) and ds.categorical_names[:3] == ("Month", "VisitorType", "Weekend")
    ctr = parse_data_spec(f"ctr:{FIX}/criteo_small.txt?buckets=50")
    assert ctr.cardinalities[0] == 50
    img = parse_data_spec(f"images:{FIX}/images?split=val&size=16&preprocessing=imagenet")
    assert img.preprocessing == "imagenet" and len(img) == 6


def test_npz(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, image=np.zeros((4, 3, 2, 2), np.float32), labels=np.array([0, 1, 1, 0]),
             label_names=np.array(["no", "yes"]))
    ds = parse_data_spec(f"npz:{p}")
    assert isinstance(ds, ArrayDataset) and ds.input_names == ("image",) and ds.label_names == ["no", "yes"]
    assert ds.task == "binary" and ds.inputs([1])[0].shape == (1, 3, 2, 2)
    np.savez(tmp_path / "bad.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="no 'labels' array; arrays are: x"):
        parse_data_spec(f"npz:{tmp_path / 'bad.npz'}")
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), labels=np.array([0]))
    with pytest.raises(InputError, match="without pickles"):
        parse_data_spec(f"npz:{tmp_path / 'obj.npz'}")


def test_spec_errors_are_one_line_and_name_the_problem(tmp_path):
    cases = [
        (f"csv:{tmp_path}/nope.csv?text=a&label=b", "nope.csv: data file does not exist"),
        (f"csv:{FIX}/intents_small.csv?text=instruction&label=label",
         "label column 'label' does not exist; columns are: instruction, intent, category"),
        (f"csv:{FIX}/intents_small.csv?text=instruction", "option label=COLUMN is required"),
        (f"csv:{FIX}/intents_small.csv?text=instruction&label=intent&sep=;", "unknown option 'sep' for csv"),
        (f"images:{FIX}/images?split=holdout", "no split 'holdout'"),
        (f"images:{FIX}/images?size=big", "size='big' is not an integer"),
        (f"tabular:{FIX}/shoppers_small.csv", "option label=COLUMN is required for tabular"),
        (f"tabular:{FIX}/shoppers_small.csv?label=Revenue&categorical=Nope", "column 'Nope' does not exist"),
        ("csv:", "the path is missing"),
    ]
    for spec, message in cases:
        with pytest.raises(InputError) as info:
            parse_data_spec(spec)
        assert message in str(info.value), (spec, str(info.value))
        assert "\n" not in str(info.value)


def test_data_package_is_lean():
    import subprocess

    repo = Path(__file__).resolve().parents[3]
    code = ("import sys, edge_kd.data, edge_kd.recipe, edge_kd.models.teachers\n"
            "r = edge_kd.recipe.load_recipe('examples/product_image_grocery.toml', shared_data='/x')\n"
            "edge_kd.data.parse_data_spec('csv:tests/fixtures/intents_small.csv?text=instruction&label=intent')\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo).stdout
    assert out.strip() == "False"
