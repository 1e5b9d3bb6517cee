"""One writer per build folder: a lock file with the owner's pid and host.

Two ``edge-kd build`` (or export/quantize/prune/distill) runs into the same folder would overwrite
each other's artifacts and leave a manifest from one recipe over files from the other. The second
run refuses (exit 2) with the owner's pid, host and command. A lock left by a process that died
(same host, pid gone) is taken over; a lock from another host is never guessed about.

    with BuildLock(out):
        ...  # write into out
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
import time
from pathlib import Path

from edge_kd.errors import InputError

LOCK_NAME = ".edge-kd.lock"
#: A lock file that cannot be parsed is someone mid-write for at most this long; older, it is debris.
_UNREADABLE_GRACE_S = 30.0


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs and could be an edge-kd run (a reused pid of another program is not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no /proc (macOS): trust kill(0)
        return True
    # empty: a process between fork and exec, or a zombie; do not guess it away
    return not cmdline or b"python" in cmdline or b"edge" in cmdline


def _is_primary_rank() -> bool:
    """Under torchrun every rank runs the same command; rank 0 holds the lock for all of them."""
    try:
        return int(os.environ.get("RANK", "0")) == 0
    except ValueError:
        return True


class BuildLock:
    """Context manager holding ``FOLDER/.edge-kd.lock``; raises InputError when another live run holds it."""

    def __init__(self, folder: str | os.PathLike[str], command: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command or " ".join(["edge-kd", *sys.argv[1:]])[:300]
        self.held = False
        self.created = False

    def _owner_text(self, info: dict) -> str:
        return (f"pid {info.get('pid')} on {info.get('host')} since {info.get('started')}"
                + (f" ({info.get('command')})" if info.get("command") else ""))

    def _stale(self) -> bool:
        """Whether the existing lock may be taken over; raises InputError when a live run holds it."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(info, dict):
                raise ValueError("not an object")
        except FileNotFoundError:
            return True
        except (OSError, ValueError):
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return True
            if age > _UNREADABLE_GRACE_S:
                return True
            raise InputError(f"{self.folder}: another edge-kd run is starting in this folder ({self.path} "
                             "is being written); wait for it or choose another --out") from None
        host = info.get("host")
        pid = info.get("pid")
        if host == socket.gethostname() and isinstance(pid, int):
            if pid == os.getpid():
                return True
            if not _alive(pid):
                return True
        elif host != socket.gethostname():
            raise InputError(f"{self.folder}: locked by another edge-kd run, {self._owner_text(info)}; if that "
                             f"run is gone, delete {self.path}")
        raise InputError(f"{self.folder}: another edge-kd run is writing into this folder ({self._owner_text(info)}); "
                         "wait for it to finish or choose another --out")

    def acquire(self) -> "BuildLock":
        if not _is_primary_rank():
            return self
        self.created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        payload = (json.dumps(info) + "\n").encode("utf-8")
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._stale():
                    # Rename, then unlink: two runs racing for the same stale lock cannot both win,
                    # because only one rename of that file succeeds.
                    debris = self.path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}")
                    try:
                        os.replace(self.path, debris)
                        debris.unlink()
                    except FileNotFoundError:
                        pass
                    continue
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(payload)
                self.held = True
                return self
        raise InputError(f"{self.folder}: could not take the lock {self.path}; another run keeps taking it")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
            if info.get("pid") == os.getpid() and info.get("host") == socket.gethostname():
                self.path.unlink()
        except (OSError, ValueError):
            pass
        if self.created:  # a run that failed before writing anything leaves no empty folder behind
            try:
                self.folder.rmdir()
            except OSError:
                pass

    def __enter__(self) -> "BuildLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
