"""Embedding-table quantization without a runtime: the int8/int4 codes against torch's reference
kernels, the graph rewrite, the byte estimates and the budget message; the XNNPACK policy allows the
quantized lookups. Real files per runtime: tests/integration/test_quantize_embeddings.py."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from edge_kd.distill.sizing import Measurement, choose_student
from edge_kd.errors import InputError
from edge_kd.models.students import make_family
from edge_kd.quantize.embeddings import (budget_error, quantize_embedding_lookups, quantize_groups_int4,
                                         quantize_rows_int8, table_bytes)
from edge_kd.runtimes.ops import violations
from edge_kd.targets import TargetProfile, load_target


def _ops():
    from edge_kd.quantize.embeddings import _ensure_ops

    _ensure_ops()
    return torch.ops.quantized_decomposed


def test_int8_rows_match_the_reference_kernel():
    torch.manual_seed(0)
    weight = torch.randn(50, 16) * torch.linspace(0.01, 3, 50).unsqueeze(1)  # rows of very different scale
    q, scales = quantize_rows_int8(weight)
    assert q.dtype == torch.int8 and scales.shape == (50,) and scales.dtype == torch.float16
    ids = torch.tensor([[0, 7, 49, 7]])
    out = _ops().embedding_byte.dtype(q, scales, None, -128, 127, ids, dtype=torch.float32)
    ref = weight[ids]
    # half a step of each row's own scale (plus the fp16 rounding of the scale)
    assert ((out - ref).abs() <= scales.float()[ids].unsqueeze(-1) * 0.5 + ref.abs() * 2e-3).all()


def test_int4_groups_pack_two_values_a_byte_and_match_the_reference_kernel():
    torch.manual_seed(0)
    weight = torch.randn(20, 64)
    packed, scales = quantize_groups_int4(weight, 32)
    assert packed.dtype == torch.uint8 and packed.shape == (20, 32) and scales.shape == (20, 2)
    ids = torch.tensor([[3, 19]])
    out = _ops().embedding_4bit.dtype(packed, scales, None, -8, 7, ids, dtype=torch.float32)
    step = scales.float()[ids].repeat_interleave(32, dim=-1)
    assert ((out - weight[ids]).abs() <= step * 0.5 + weight[ids].abs() * 2e-3).all()


class _TwoTables(nn.Module):
    def __init__(self):
        super().__init__()
        self.words = nn.Embedding(100, 8)
        mask = torch.ones(100, 1)
        mask[0] = 0
        self.register_buffer("mask", mask)
        self.head = nn.Linear(8, 2)

    def forward(self, ids):
        return self.head((self.words(ids) * nn.functional.embedding(ids, self.mask)).mean(1))


@pytest.mark.parametrize("scheme", ["int8", "int4"])
def test_graph_rewrite_replaces_every_constant_lookup(scheme):
    model = _TwoTables().eval()
    ids = torch.tensor([[0, 5, 99, 42]])
    gm = torch.export.export(model, (ids,), strict=False).module()
    records = quantize_embedding_lookups(gm, scheme)
    assert sorted(r["scheme"] for r in records) == sorted([scheme, "int8-exact"])
    targets = [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]
    assert any(f"embedding_{'byte' if scheme == 'int8' else '4bit'}" in t for t in targets)
    # the float tables are gone from the module; the mask is stored exactly as int8
    floats = [n for n, b in list(gm.named_buffers()) + list(gm.named_parameters())
              if b.dtype == torch.float32 and b.numel() >= 100]
    assert floats == []
    assert torch.allclose(gm(ids), model(ids), atol=0.05 if scheme == "int4" else 0.01)
    assert quantize_embedding_lookups(torch.export.export(model, (ids,), strict=False).module(), "float") == []


def test_table_bytes_per_runtime():
    assert table_bytes(1000, 64, "float") == 256_000
    assert table_bytes(1000, 64, "int8", "executorch") == 66_000
    assert table_bytes(1000, 64, "int8", "litert") == 76_000
    assert table_bytes(1000, 64, "int8", "onnxruntime") == 64_000
    assert table_bytes(1000, 64, "int4", "executorch") == 36_000  # 32 bytes + two fp16 group scales


def _target(name: str, size: str, embeddings: str = "int8") -> TargetProfile:
    d = load_target(name).to_dict()
    d["budgets"]["artifact_size"] = d["budgets"]["download_size"] = size
    d["quantization"]["embeddings"] = embeddings
    return TargetProfile.from_dict(d, source="<test>")


def test_budget_error_names_the_key_the_runtime_and_what_fits():
    model = make_family("text_hashed", num_classes=4, dim=64, max_ids=16).build(20000)
    assert budget_error(model, _target("android-arm64-xnnpack", "4MiB"), 4 * 2**20) is None
    msg = budget_error(model, _target("android-arm64-xnnpack", "1MiB"), 2**20)
    assert "quantization.embeddings = 'int8'" in msg and "executorch" in msg and "embeddings = 'int4'" in msg
    msg = budget_error(model, _target("ort-mobile", "256KiB"), 256 * 1024)
    assert msg.startswith("quantization.embeddings:") and "onnxruntime" in msg and "rows in all fit at int8" in msg


def test_sizing_says_which_embedding_scheme_would_fit():
    family = make_family("text_hashed", num_classes=4, dim=64, max_ids=16, low=20000, high=40000, step=1000)

    def measure(model, example_inputs, target):  # what a real int8 export of these tables would weigh
        raw = 2000 + 66 * model.embed.num_embeddings
        return Measurement(raw, raw, "fake")

    with pytest.raises(InputError) as exc:
        choose_student(family, _target("android-arm64-xnnpack", "1MiB"), measure=measure)
    assert "set [quantization] embeddings = 'int4'" in str(exc.value) and "executorch" in str(exc.value)


def test_xnnpack_policy_allows_the_quantized_lookups_only():
    ops = {"executorch_call_delegate[XnnpackBackend]": 1, "quantized_decomposed::embedding_byte.dtype_out": 1,
           "quantized_decomposed::embedding_4bit.dtype_out": 1, "aten::embedding.out": 1}
    assert violations("xnnpack-full-delegation", "executorch", ops) == []
    bad = {**ops, "quantized_decomposed::add.out": 1, "aten::sum.IntList_out": 1, "aten::ne.Scalar_out": 1}
    assert violations("xnnpack-full-delegation", "executorch", bad) == [
        "aten::ne.Scalar_out", "aten::sum.IntList_out", "quantized_decomposed::add.out"]
