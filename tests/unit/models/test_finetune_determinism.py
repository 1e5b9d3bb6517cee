"""One teacher per build: a head fit is bit-identical across processes for a seed, whatever the
process's global RNG state was when the teacher (and its head) was built."""
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np

_FIT = r"""
import hashlib, sys
import numpy as np
import torch
from edge_kd.data import ArrayDataset, train_val_test_split
from edge_kd.models.finetune import FinetuneSettings, finetune_head
from edge_kd.models.tabular import TabularMLP

rng = np.random.default_rng(0)
labels = np.arange(90) % 3
x = (rng.normal(0, 3, (3, 8))[labels] + rng.normal(0, 0.5, (90, 8))).astype(np.float32)
ds = ArrayDataset([x], ["numeric"], labels, ["a", "b", "c"])
s = train_val_test_split(ds, val=0.2, test=0.2, seed=0)
torch.manual_seed(0)  # the pretrained trunk: the same in every process
backbone = TabularMLP(8, (), num_classes=3, hidden=(16,), dropout=0.0).eval()
torch.manual_seed(int(sys.argv[1]))  # whatever else the process did before the fit
backbone.replace_head(3)  # a head drawn from that state, already of the right width
model, _ = finetune_head(backbone, s.train, val=s.val, settings=FinetuneSettings(epochs=5, lr=0.05, batch_size=16),
                         cache=False)
h = hashlib.sha256()
for k, v in sorted(model.state_dict().items()):
    h.update(k.encode()); h.update(v.detach().contiguous().numpy().tobytes())
print(h.hexdigest())
"""


def _fit_in_new_process(rng_state: int) -> str:
    repo = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", _FIT, str(rng_state)], capture_output=True, text=True, timeout=120,
                         cwd=repo, env={"PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_head_fit_is_bit_identical_across_processes():
    a, b = _fit_in_new_process(1), _fit_in_new_process(2)
    assert len(a) == 64 and a == b
