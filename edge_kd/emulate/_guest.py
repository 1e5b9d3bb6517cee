"""Guest side of an emulated benchmark: runs inside the arm64 python under qemu-aarch64.

``python -m edge_kd.emulate._guest REQUEST.json RESULT.json``. Opens the artifact with the same
runner (and session options) as the host benchmark, runs the warm-up inferences unmarked (the first
completes loading: weight packing, allocation), then ``baseline`` empty marked regions (the marker's
own cost, subtracted by the host) and ``runs`` marked inferences. The plugin counts instructions
only inside marked regions. Imports nothing but numpy, the runtime and edge_kd.runtimes.
"""
from __future__ import annotations

import json
import sys

# Must match insn_classes.c.
MARK_NR = 0x4544
MARK_COOKIE = 0x65646765


def main(request_path: str, result_path: str) -> int:
    with open(request_path) as fh:
        request = json.load(fh)
    result: dict = {"ok": False}
    try:
        import ctypes

        import numpy as np

        from edge_kd.errors import InputError
        from edge_kd.runtimes import open_runner

        syscall = ctypes.CDLL(None, use_errno=True).syscall
        syscall.restype = ctypes.c_long
        syscall.argtypes = [ctypes.c_long, ctypes.c_ulong, ctypes.c_ulong]

        def mark(open_: int) -> None:
            syscall(MARK_NR, MARK_COOKIE, open_)

        try:
            runner = open_runner(request["path"], threads=int(request["threads"]))
            inputs = None
            if request.get("inputs"):
                with np.load(request["inputs"], allow_pickle=False) as data:
                    inputs = [data[k] for k in sorted(data.files, key=lambda k: int(k[1:]))]
            if inputs is None:
                # The host benchmark's default inputs (edge_kd.bench._worker): same seed, same arrays.
                rng = np.random.default_rng(0)
                inputs = [rng.random(shape).astype(dtype) if np.dtype(dtype).kind == "f"
                          else rng.integers(0, 2, shape).astype(dtype) for _, shape, dtype in runner.input_specs]
            inputs = runner.check_inputs(inputs)
            for _ in range(max(1, int(request["warmup_runs"]))):
                runner._run(inputs)
        except InputError as exc:
            result.update(error=str(exc), input_error=True)
            return 0
        run = runner._run
        for _ in range(int(request["baseline"])):
            mark(1)
            mark(0)
        for _ in range(int(request["runs"])):
            mark(1)
            run(inputs)
            mark(0)
        result = {"ok": True, "runtime": runner.runtime, "runtime_version": runner.runtime_version,
                  "inputs": [{"name": n, "shape": list(s), "dtype": np.dtype(d).name} for n, s, d in runner.input_specs]}
        return 0
    except Exception as exc:  # reported to the host, which raises with the artifact's name
        result.update(error=f"{type(exc).__name__}: {exc}")
        return 0
    finally:
        with open(result_path, "w") as fh:
            json.dump(result, fh)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
