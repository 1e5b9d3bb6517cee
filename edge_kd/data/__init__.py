"""Data loaders for text, images, tabular and CTR data; stratified splits; calibration samples.

Every loader returns a ``Dataset`` (``len(ds)``, ``ds.labels``, ``ds.num_classes``, ``ds.task``,
``ds.inputs(indices) -> tuple of numpy arrays``). Nothing here imports torch.

    from edge_kd.data import parse_data_spec, train_val_test_split, calibration_sample
    ds = parse_data_spec("csv:support.csv?text=instruction&label=intent")
    splits = train_val_test_split(ds, val=0.1, test=0.2, seed=0)
    calib = calibration_sample(splits.train, 128, seed=0)
"""
from edge_kd.data.arrays import ArrayDataset, load_npz
from edge_kd.data.base import Dataset, iter_batches
from edge_kd.data.images import ImageDataset, load_image_list
from edge_kd.data.spec import parse_data_spec
from edge_kd.data.splits import Splits, calibration_sample, split_off, stratified_split_indices, train_val_test_split
from edge_kd.data.tabular import TabularDataset, TabularPreprocessor, TabularSchema, load_ctr_csv, load_tabular_csv
from edge_kd.data.text import TextDataset, TokenizedTextDataset, load_text_csv

__all__ = [
    "ArrayDataset", "Dataset", "ImageDataset", "Splits", "TabularDataset", "TabularPreprocessor", "TabularSchema",
    "TextDataset", "TokenizedTextDataset", "calibration_sample", "iter_batches", "load_ctr_csv", "load_image_list",
    "load_npz", "load_tabular_csv", "load_text_csv", "parse_data_spec", "split_off", "stratified_split_indices",
    "train_val_test_split",
]
