"""ExecuTorch's dynamic int8 candidate quantizes Linear layers only: with convolutions quantized too,
XNNPACK refused a padded strided convolution at run time ("Propagating input shapes failed"), which
stopped every EfficientNet-Lite0 build on the Android target in its quantize stage. A candidate that
builds but does not run is skipped with its reason, never a traceback."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edge_kd.quantize import quantize_model, schemes
from edge_kd.runtimes import open_runner
from edge_kd.targets import load_target

pytestmark = pytest.mark.integration
torch.set_num_threads(1)


def padded_stem() -> nn.Module:
    """EfficientNet-Lite's stem in miniature: asymmetric zero padding, then a strided 3x3 convolution."""
    torch.manual_seed(0)
    return nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(3, 32, 3, stride=2), nn.ReLU6(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4)).eval()


def samples(n: int = 8) -> list[tuple[np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(rng.random((1, 3, 16, 16), dtype=np.float32),) for _ in range(n)]


def _assert_matches_fp32(model: nn.Module, pte: Path, data: list[tuple[np.ndarray]], rel: float) -> None:
    """Every sample through the .pte within ``rel`` of the largest fp32 output (at least 1)."""
    runner = open_runner(pte)
    for (x,) in data:
        out = np.asarray(runner.run([x])[0])
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert np.abs(out - ref).max() <= rel * max(1.0, float(np.abs(ref).max()))


def test_dynamic_candidate_runs_and_matches_fp32(tmp_path: Path):
    model, data = padded_stem(), samples()
    (scheme,) = schemes.alternative_schemes("executorch")
    files = scheme.build(model, (torch.from_numpy(data[0][0]),), data, [], tmp_path / "m.int8-dynamic.pte")
    _assert_matches_fp32(model, files[0], data, 0.02)


class IndexByOffset(nn.Module):
    """Integer arithmetic feeding an index, as transformers' attention-mask code does (``arange + 0``)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.Embedding(12, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1]) + 0
        return self.fc(self.table(ids)[:, pos].mean(dim=1))


def test_dynamic_candidate_keeps_integer_index_arithmetic(tmp_path: Path):
    """The stock XNNPACKQuantizer transform made ``arange + 0`` a float add and calibration crashed on the
    index (MiniLM's dynamic candidate, 2026-12-05); the candidate now builds and matches fp32."""
    model = IndexByOffset().eval()
    data = [(np.array([[1, 5, 7, 2]], dtype=np.int64),), (np.array([[3, 3, 0, 11]], dtype=np.int64),)]
    (scheme,) = schemes.alternative_schemes("executorch")
    files = scheme.build(model, (torch.from_numpy(data[0][0]),), data, [], tmp_path / "m.int8-dynamic.pte")
    # the embedding table is stored as int8 rows (the embeddings = "int8" default), as in the static file
    floats = scheme.build(model, (torch.from_numpy(data[0][0]),), data, [], tmp_path / "f.int8-dynamic.pte",
                          embeddings="float")
    program = files[0].read_bytes()
    assert b"embedding_byte" in program and b"embedding_byte" not in floats[0].read_bytes()
    _assert_matches_fp32(model, files[0], data, 0.05)


def test_a_candidate_that_does_not_run_is_skipped(tmp_path: Path, monkeypatch):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)

    from edge_kd.export.executorch import export_pte
    from edge_kd.quantize.ranges import PT2ECalibration

    def every_op_dynamic(model, example_inputs, calib, fp32_files, out_path, *, embeddings="int8"):
        """The scheme as it was: a global dynamic config, convolutions included."""
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True,
                                                                                    is_dynamic=True))
        with schemes._without_qdq_metadata_port():
            converted, _ = PT2ECalibration(model, example_inputs, quantizer, list(calib)[:2]).convert(None)
        return [export_pte(converted, example_inputs, out_path)]

    monkeypatch.setitem(schemes.SCHEMES, "executorch",
                        (schemes.Scheme("int8-dynamic", "every op dynamic", every_op_dynamic),))
    data = samples()
    result = quantize_model(padded_stem(), (torch.from_numpy(data[0][0]),), load_target("android-arm64-xnnpack"),
                            data, tmp_path / "q", method="minmax")
    (skipped,) = result.report["selection"]["skipped"]
    assert skipped["name"] == "int8-dynamic" and skipped["reason"].startswith("does not run in executorch")
    assert result.shipped in ("fp32", "int8") and result.primary.is_file()
