"""Embedding tables in int8 (or int4) on every runtime, read back from the real files: the tables are
stored quantized (tensor dtypes through the runner), the file shrinks, it runs within tolerance of the
PyTorch model, and the target's op policy passes (on XNNPACK: every op delegated or a lookup)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_kd.export import export_model
from edge_kd.models.students import make_family
from edge_kd.quantize import open_artifact, quantize_model
from edge_kd.targets import load_target

pytestmark = pytest.mark.integration
torch.set_num_threads(1)

TARGETS = ("android-arm64-xnnpack", "ort-mobile", "tflite-int8")
DIM = 32
MODELS = {
    # (family, knob value, the embedding tables as (rows, dim))
    "text": (lambda: make_family("text_hashed", num_classes=5, dim=DIM, max_ids=16), 2048, [(2049, DIM)]),
    "wordpiece": (lambda: make_family("text_wordpiece", num_classes=5, dim=DIM, max_ids=16, pieces=4096, kernel=3), 2048,
                  [(2049, DIM)]),
    "tabular": (lambda: make_family("tabular_mlp", num_dense=4, cardinalities=[700, 900], embed_dim=DIM,
                                    num_outputs=3), 16, [(700, DIM), (900, DIM)]),
}


def _target(name: str, embeddings: str):
    target = load_target(name)
    return dataclasses.replace(target, quantization=dataclasses.replace(target.quantization, embeddings=embeddings))


def _build(kind: str):
    make, value, tables = MODELS[kind]
    family = make()
    model = family.build(value).eval()
    with torch.no_grad():  # trained-looking tables: the tiny head must not hide table errors
        for m in model.modules():
            if isinstance(m, torch.nn.Embedding):
                m.weight.normal_(0, 0.5)
                if m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
    samples = [tuple(np.asarray(x) for x in family.example_inputs(value, seed=i)) for i in range(24)]
    return model, family.example_inputs(value), samples, tables


def _table_tensors(tensors: list[dict], rows: int, dim: int) -> list[dict]:
    """Stored tensors holding one table's values: rows*dim elements in any dtype (int4 packs two a byte)."""
    sizes = {rows * dim * 4: "float32", rows * dim: "int8", rows * dim // 2: "int4"}
    return [t for t in tensors if int(t.get("bytes", 0)) in sizes
            and (not t.get("shape") or int(np.prod(t["shape"])) in (rows * dim, rows * dim // 2))]


def _check_runs_close(result, target, model, samples):
    runner = open_artifact(result.primary, target.runtime.name)
    for sample in samples[:6]:
        out = runner.run(list(sample))[0]
        ref = model(*[torch.from_numpy(np.ascontiguousarray(a)) for a in sample]).detach().numpy()
        assert np.abs(out - ref).max() < 0.05 * max(float(np.abs(ref).max()), 1e-3) + 0.02
    ops = runner.ops(target.ops.policy)
    assert ops["violations"] == [], ops
    return runner


@pytest.mark.parametrize("target_name", TARGETS)
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_int8_embedding_tables_on_every_runtime(tmp_path: Path, target_name: str, kind: str):
    model, example, samples, tables = _build(kind)
    target = _target(target_name, "int8")
    result = quantize_model(model, example, target, samples, tmp_path, method="minmax", ship="int8")
    report = result.report
    assert report["scheme"]["embeddings"] == "int8"
    runner = _check_runs_close(result, target, model, samples)
    tensors = runner.tensors()
    for rows, dim in tables:
        stored = _table_tensors(tensors, rows, dim)
        assert stored and all(str(t["dtype"]) == "int8" for t in stored), (rows, dim, stored)
    assert not [t for t in tensors if str(t["dtype"]) == "float32" and int(t["bytes"]) >= 700 * DIM * 4]
    # int8 rows + their scales: about a quarter of the float file (LiteRT keeps an int64 zero point per row;
    # the wordpiece student's convolution adds its QDQ weights)
    bound = (0.42 if target_name == "tflite-int8" else 0.36) + (0.02 if kind == "wordpiece" else 0.0)
    assert report["size"]["ratio"] < bound, report["size"]
    assert report["accuracy"]["within_budget"] and report["accuracy"]["output_sqnr_db"] > 25.0
    recorded = report["embedding_tables"]
    assert {(r["rows"], r["dim"]) for r in recorded} >= set(tables)
    assert all(r["scheme"].startswith("int8") for r in recorded)


@pytest.mark.parametrize("target_name", ["android-arm64-xnnpack", "tflite-int8"])
def test_int4_embedding_tables_where_the_runtime_has_the_kernel(tmp_path: Path, target_name: str, monkeypatch):
    import edge_kd.quantize.embeddings as embeddings

    model, example, samples, tables = _build("text")
    # int4 keeps a scale per row: compare with int8 per row (a narrow int8 LiteRT table gets one scale)
    monkeypatch.setattr(embeddings, "PER_ROW_MIN_DIM", 1)
    int8 = quantize_model(model, example, _target(target_name, "int8"), samples, tmp_path / "int8",
                          method="minmax", ship="int8")
    target = _target(target_name, "int4")
    result = quantize_model(model, example, target, samples, tmp_path / "int4", method="minmax", ship="int8")
    runner = _check_runs_close(result, target, model, samples)
    (rows, dim), = tables
    stored = _table_tensors(runner.tensors(), rows, dim)
    # ExecuTorch packs two int4 values per uint8; LiteRT stores an int4 tensor
    assert stored and all(str(t["dtype"]) in ("uint8", "int4") for t in stored), stored
    assert result.report["size"]["int8_bytes"] < 0.8 * int8.report["size"]["int8_bytes"]
    assert result.report["accuracy"]["output_sqnr_db"] > 20.0


def test_narrow_litert_tables_get_one_scale_and_a_smaller_file(tmp_path: Path, monkeypatch):
    """LiteRT pays a float32 scale and an int64 zero point per row of a per-row table: under
    PER_ROW_MIN_DIM columns one scale per table, as faithful on this table and 12 bytes a row smaller."""
    import edge_kd.quantize.embeddings as embeddings

    model, example, samples, tables = _build("text")
    (rows, dim), = tables
    target = _target("tflite-int8", "int8")
    narrow = quantize_model(model, example, target, samples, tmp_path / "table", method="minmax", ship="int8")
    monkeypatch.setattr(embeddings, "PER_ROW_MIN_DIM", 1)
    per_row = quantize_model(model, example, target, samples, tmp_path / "row", method="minmax", ship="int8")
    saved = per_row.report["size"]["int8_bytes"] - narrow.report["size"]["int8_bytes"]
    assert saved >= 11 * rows, (saved, rows)  # a float32 scale + an int64 zero point per row, less padding
    assert [r["scheme"] for r in narrow.report["embedding_tables"] if r["dim"] == dim] == ["int8-per-table"]
    assert narrow.report["accuracy"]["output_sqnr_db"] > per_row.report["accuracy"]["output_sqnr_db"] - 3.0


@pytest.mark.parametrize("target_name", TARGETS)
def test_float_embeddings_keep_the_table_float(tmp_path: Path, target_name: str):
    model, example, samples, tables = _build("text")
    target = _target(target_name, "float")
    result = quantize_model(model, example, target, samples, tmp_path, method="minmax", ship="int8")
    runner = _check_runs_close(result, target, model, samples)
    (rows, dim), = tables
    stored = _table_tensors(runner.tensors(), rows, dim)
    assert stored and all(str(t["dtype"]) == "float32" for t in stored), stored


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_fp32_students_are_fully_delegated_on_xnnpack(tmp_path: Path, kind: str):
    model, example, _samples, _tables = _build(kind)
    target = load_target("android-arm64-xnnpack")
    result = export_model(model, example, target, tmp_path)
    ops = open_artifact(result.primary, "executorch").ops(target.ops.policy)
    assert ops["violations"] == [] and ops["delegated"] > 0, ops
    assert set(op.split(".")[0] for op in ops["operators"]) <= {
        "executorch_call_delegate[XnnpackBackend]", "aten::embedding", "aten::select_copy"}
