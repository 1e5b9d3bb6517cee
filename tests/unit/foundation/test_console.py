"""The console shows edge_kd's own lines only: third-party logs, warnings and native runtime lines
go to the log; --quiet keeps results and errors; --verbose lets everything through."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

from edge_kd import console

REPO = Path(__file__).resolve().parents[3]
# A function whose frames belong to an edge_kd module: how edge_kd's own prints look to the router.
_OWN: dict = {"__name__": "edge_kd.cli._console_test", "sys": sys}
exec("def say(msg, out=False):\n    print(msg, file=sys.stdout if out else sys.stderr)", _OWN)
say = _OWN["say"]
NOISE = ("[threadpool.cpp", "[cpuinfo_utils.cpp", "Failed to load", "FutureWarning", "UserWarning",
         "DeprecationWarning", "_pytree.py")


def test_router_sends_third_party_output_to_the_log(tmp_path, capsys):
    log = tmp_path / "logs" / "edge-kd.log"
    with console.capture() as cap:
        say("edge_kd line")
        print("a third-party print", file=sys.stderr)
        toolkit = logging.getLogger("some_toolkit")  # a library that sets up its handler on import
        toolkit.addHandler(logging.StreamHandler())
        toolkit.propagate = False
        toolkit.warning("Failed to load libfoo.so")
        warnings.warn("old API", FutureWarning)
        sys.stderr.write("[threadpool.cpp:66] Resetting threadpool to 1 threads.\n")  # pybind11's std::cerr
        sys.stderr.write("[cpuinfo_")  # written in pieces: decided per complete line
        sys.stderr.write("utils.cpp:87] Failed to open midr file\n")
        os.write(2, b"native line on fd 2\n")
        cap.keep_in(log)
    err = capsys.readouterr().err
    assert err == "edge_kd line\n"
    text = log.read_text()
    for line in ("a third-party print", "Failed to load libfoo.so", "old API", "[threadpool.cpp:66]", "[cpuinfo_utils.cpp:87]",
                 "native line on fd 2"):
        assert line in text


def test_quiet_keeps_only_edge_kd_prefixed_lines(capsys):
    console.set_level("quiet")
    try:
        with console.capture():
            say("sizing: hidden=8")
            say("edge-kd: goal missed by 2 ms")
            say("the result table", out=True)  # stdout: results always show
    finally:
        console.set_level("normal")
    out, err = capsys.readouterr()
    assert err == "edge-kd: goal missed by 2 ms\n" and out == "the result table\n"


def test_progress_prints_one_line_off_a_terminal_and_nothing_for_short_steps(capsys, monkeypatch):
    with console.progress("short step", total=3) as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""
    bar = console.progress("teacher outputs", total=10, unit=" rows", min_seconds=0.0)
    bar.update(10)
    bar.close()
    assert capsys.readouterr().err.startswith("teacher outputs: 10/10 rows in ")


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.run([sys.executable, "-m", "edge_kd", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_executorch_export_console_has_no_toolchain_noise(tmp_path):
    args = ["export", "edge_kd.testing.tiny_models:tiny_mlp", "--input", "features:1x12:float32", "--target",
            "android-arm64-xnnpack", "--out"]
    quiet = _cli(*args, "b", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    for noise in NOISE:
        assert noise not in quiet.stderr + quiet.stdout, noise
    log = (tmp_path / "b" / "logs" / "edge-kd.log").read_text()
    assert "[threadpool.cpp" in log or "Failed to load" in log or "Warning" in log  # it was kept, not lost
    verbose = _cli(*args, "v", "--verbose", cwd=tmp_path)
    assert verbose.returncode == 0
    assert any(n in verbose.stderr for n in NOISE)  # --verbose shows the toolchain's own output
    assert not (tmp_path / "v" / "logs").exists()
