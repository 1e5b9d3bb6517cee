"""Two-process DDP run with torchrun on CPU (gloo): both ranks end with the same weights, the
epoch is sharded between them, and only rank 0 writes the checkpoint."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

WORKER = textwrap.dedent('''
    import json, os, sys
    import numpy as np, torch
    from torch import nn
    torch.set_num_threads(1)
    from edge_kd.distill.losses import build_loss
    from edge_kd.distill.trainer import DistillData, EvalData, TrainConfig, train_student

    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 3)).astype(np.float32)
    x = rng.normal(size=(48, 6)).astype(np.float32)
    t = x @ w
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-2, device="cpu", progress=False)
    inner = build_loss("logit_regression")

    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.rows = inner, 0

        def forward(self, s, t, y):
            self.rows += s.shape[0]
            return self.inner(s, t, y)

    loss = Counting()
    result = train_student(student, loss, DistillData((x,), t.argmax(1), t), EvalData((x[:16],), t[:16].argmax(1)),
                           cfg, checkpoint_dir=sys.argv[1])
    checksum = float(sum(p.double().sum() for p in student.parameters())) + float(inner.theta)
    print("RESULT " + json.dumps({"rank": int(os.environ["RANK"]), "world": result.world_size,
                                  "checksum": checksum, "epochs": result.epochs_run, "rows": loss.rows,
                                  "files": sorted(os.listdir(sys.argv[1]))}), flush=True)
''')


def test_two_process_ddp(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    ckpt = tmp_path / "ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                           str(script), str(ckpt)], capture_output=True, text=True, timeout=180, env=env,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Both ranks print to one pipe: their lines can interleave, so decode each object where its marker starts.
    decoder = json.JSONDecoder()
    results = [decoder.raw_decode(part)[0] for part in proc.stdout.split("RESULT ")[1:]]
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert all(r["world"] == 2 and r["epochs"] == 2 for r in results)
    assert [r["rows"] for r in results] == [48, 48]  # each rank saw half of 48 rows per epoch, 2 epochs
    assert results[0]["checksum"] == pytest.approx(results[1]["checksum"], abs=1e-9)
    assert sorted(os.listdir(ckpt)) == ["best.safetensors", "last.pt"]
