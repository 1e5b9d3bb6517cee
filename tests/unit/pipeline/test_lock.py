"""One writer per build folder: a live lock refuses (exit 2 material), a dead owner's is taken over."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from edge_kd.errors import InputError
from edge_kd.pipeline import Build
from edge_kd.pipeline.lock import LOCK_NAME, BuildLock


def _write_lock(folder, pid, host=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                                "command": "edge-kd build r.toml", "started": "now"}))


def test_a_reused_pid_of_another_program_does_not_hold_the_lock(tmp_path):
    other = subprocess.Popen(["sh", "-c", "echo ready; exec sleep 30"], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        import time

        # exec done: the shell's own command line also contains "sleep", so match the program name
        while not open(f"/proc/{other.pid}/cmdline", "rb").read().startswith(b"sleep\0"):
            time.sleep(0.01)
        _write_lock(tmp_path / "out", other.pid)
        with BuildLock(tmp_path / "out") as lock:
            assert lock.held
    finally:
        other.kill()
        other.wait()


def test_second_run_refuses_while_the_owner_lives(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "ready"  # running python, not mid-exec
        _write_lock(tmp_path / "out", owner.pid)
        with pytest.raises(InputError, match=f"another edge-kd run.*pid {owner.pid}"):
            BuildLock(tmp_path / "out").acquire()
    finally:
        owner.kill()
        owner.wait()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock(tmp_path / "out", dead.pid)
    with BuildLock(tmp_path / "out") as lock:
        assert lock.held
        assert json.loads((tmp_path / "out" / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / "out" / LOCK_NAME).exists()


def test_lock_from_another_host_is_not_guessed_about(tmp_path):
    _write_lock(tmp_path / "out", 1, host="some-other-host")
    with pytest.raises(InputError, match="delete"):
        BuildLock(tmp_path / "out").acquire()


def test_lock_file_does_not_make_a_new_folder_look_foreign(tmp_path):
    with BuildLock(tmp_path / "b"):
        Build.create(tmp_path / "b")  # an empty folder holding only our lock is still ours to build in
    assert (tmp_path / "b" / "build.json").is_file()


def test_failed_run_leaves_no_empty_folder(tmp_path):
    with pytest.raises(RuntimeError):
        with BuildLock(tmp_path / "new"):
            raise RuntimeError("failed before writing")
    assert not (tmp_path / "new").exists()


def test_other_ranks_do_not_take_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    _write_lock(tmp_path / "out", os.getpid())
    BuildLock(tmp_path / "out").acquire()  # rank 0 (this process) holds it for the job
