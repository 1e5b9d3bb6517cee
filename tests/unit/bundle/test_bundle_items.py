"""The next-purchase item-id map (``edge_kd.items`` asset): an app's raw history -> the model input."""
from __future__ import annotations

import numpy as np

from edge_kd.bundle.assets import items_asset, items_inputs, raw_to_inputs


def test_items_rule_drops_unknown_and_untrained_keeps_the_newest_and_left_pads():
    asset = items_asset(["A1", "B2", "C3", "D4"], ["C3"], 3, {"inputs": [{"name": "history", "dtype": "int64",
                                                                         "shape": [1, 3]}]})
    # unknown code X and untrained C3 are dropped; of A1 B2 D4 B2... the last 3 kept, newest last
    (x,) = items_inputs(asset, ["A1", "X", "C3", "B2", "D4"])
    assert x.dtype == np.int64 and x.tolist() == [[1, 2, 4]]
    (x,) = items_inputs(asset, ["D4"])
    assert x.tolist() == [[0, 0, 4]]                                 # left-padded with 0
    (x,) = items_inputs(asset, [])
    assert x.tolist() == [[0, 0, 0]]


def test_raw_history_goes_through_the_contract(tmp_path):
    contract = {"inputs": [{"name": "history", "dtype": "int32", "shape": [1, 2]}]}
    asset = items_asset(["A1", "B2"], [], 2, contract)
    (x,) = raw_to_inputs(asset, {"history": ["B2", "A1"]}, tmp_path)
    assert x.dtype == np.int32 and x.tolist() == [[2, 1]]          # a .tflite contract takes int32 ids
