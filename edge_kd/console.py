"""What the user sees while a command runs: edge_kd's own lines, progress, and nothing else.

The toolchain under us talks a lot: torchao logs "Failed to load ... .so", torch logs pytree
deprecations, ExecuTorch's C++ runtime prints ``[threadpool.cpp:66] Resetting threadpool`` and
``[cpuinfo_utils.cpp] Failed to open midr file`` straight to file descriptor 2. None of it is
something a user can act on, and it buries the lines that matter.

``capture()`` keeps that output in a log file (``OUT/<target>/logs/edge-kd.log`` for a build,
``OUT/logs/edge-kd.log`` for a single-stage command) instead of the terminal:

* file descriptor 2 (what C/C++ code writes to) is pointed at the log file;
* ``sys.stderr``/``sys.stdout`` become routers: a write made by edge_kd's own code goes to the
  terminal, a write made by any other package (a logging handler, ``warnings``, a converter's
  print) goes to the log; Python warnings are written to the log too.

``--verbose`` turns all of this off (everything reaches the terminal, as without edge_kd);
``--quiet`` keeps only results, errors and ``edge-kd:`` lines. ``progress`` draws a bar with an
ETA on a terminal and prints one line per step otherwise (CI logs stay short). Light imports only.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

#: "normal" | "quiet" | "verbose"; set once by the CLI from --quiet/--verbose.
_LEVEL = os.environ.get("EDGE_KD_CONSOLE", "normal")


def set_level(level: str) -> None:
    global _LEVEL
    if level not in ("normal", "quiet", "verbose"):
        raise ValueError(f"console level must be normal, quiet or verbose, got {level!r}")
    _LEVEL = level
    if level == "verbose":
        os.environ["EDGE_KD_VERBOSE"] = "1"  # converters' quiet_output() also stands aside


def level() -> str:
    return _LEVEL


def _own_frame(depth: int) -> bool:
    """Whether the code writing (``depth`` frames up) is edge_kd's (or a script's ``__main__``)."""
    try:
        frame = sys._getframe(depth)
    except ValueError:
        return True
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        # print() is C code: the first Python frame above write() is the caller of print().
        if name in ("contextlib", "codecs", "io", "_io"):
            frame = frame.f_back
            continue
        return name.startswith("edge_kd") or name == "__main__" or name.startswith("benchmarks")
    return True


#: Lines native runtimes print through Python's sys.stderr (pybind11 redirects std::cerr there, so
#: the writing "frame" is whatever edge_kd code called into the runtime): ExecuTorch's
#: ``[threadpool.cpp:66] ...`` and glog-style ``W1203 09:39:06.84 123 file.py:630] ...``.
NATIVE_LINE = re.compile(r"^\s*(\[[\w./-]+\.(cpp|cc|cxx|c|h|hpp):\d+\]|[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ )")


class _Router(io.TextIOBase):
    """Stands in for sys.stderr/sys.stdout during ``capture``: edge_kd's lines to the terminal,
    everyone else's to the log. After the capture it forwards everything to the real stream (a
    logging handler created meanwhile may keep a reference to it)."""

    def __init__(self, terminal: Any, log: Any, *, is_stderr: bool):
        self.terminal = terminal
        self.log = log
        self.is_stderr = is_stderr
        self.active = True
        self.fallback = terminal
        self._pending = ""
        self._pending_own = True

    def write(self, text: str) -> int:
        if not self.active:
            return self.fallback.write(text)
        if not self._pending:
            self._pending_own = _own_frame(2)
        self._pending += text
        # Decide per complete line: native runtimes write a line in several pieces.
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._emit(line + "\n")
        return len(text)

    def _emit(self, line: str) -> None:
        if NATIVE_LINE.match(line) or not self._pending_own:
            self.log.write(line)
            return
        if _LEVEL == "quiet" and self.is_stderr and line.strip() and not line.lstrip().startswith("edge-kd"):
            return
        self.terminal.write(line)

    def drain(self) -> None:
        if self._pending:
            line, self._pending = self._pending, ""
            self._emit(line)

    def flush(self) -> None:
        for stream in (self.terminal, self.log):
            with contextlib.suppress(Exception):
                stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.terminal, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self.terminal.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.terminal, "encoding", "utf-8")

    def writable(self) -> bool:
        return True


class Capture:
    """The state of one ``capture`` block. Third-party output first goes to a temporary file;
    ``switch`` points it at a build target's log, ``keep_in`` saves the temporary part at the end."""

    def __init__(self) -> None:
        self.stderr: _Router | None = None
        self.stdout: _Router | None = None
        self._temp = None
        self._sink = None
        self._saved_fd: int | None = None
        self._terminal = None
        self._keep: Path | None = None

    def start(self) -> "Capture":
        sys.stdout.flush()
        sys.stderr.flush()
        self._temp = self._sink = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        self._saved_fd = os.dup(2)
        # Our own lines keep reaching the terminal through a copy of the original descriptor (when
        # sys.stderr is a Python object of its own, e.g. a test's capture, it is used as it is).
        try:
            on_fd2 = sys.stderr.fileno() == 2
        except (AttributeError, OSError, ValueError):
            on_fd2 = False
        if on_fd2:
            self._terminal = open(os.dup(self._saved_fd), "w", errors="replace", buffering=1, closefd=True,
                                  encoding=getattr(sys.stderr, "encoding", None) or "utf-8")
            self._own_terminal = True
        else:
            self._terminal, self._own_terminal = sys.stderr, False
        os.dup2(self._sink.fileno(), 2)
        self.stderr = _Router(self._terminal, self._sink, is_stderr=True)
        self.stdout = _Router(sys.stdout, self._sink, is_stderr=False)
        self._real = (sys.stderr, sys.stdout, warnings.showwarning)
        sys.stderr, sys.stdout = self.stderr, self.stdout

        def showwarning(message, category, filename, lineno, file=None, line=None):
            self._sink.write(warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = showwarning
        return self

    def switch(self, path: Path | None) -> None:
        """Send third-party output to the log file ``path`` from now on (None: back to the temporary file)."""
        if self._sink is None:
            return
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            self._sink.flush()
        if path is None:
            new = self._temp
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            new = open(path, "a", encoding="utf-8", errors="replace", buffering=1)
        os.dup2(new.fileno(), 2)
        old, self._sink = self._sink, new
        for router in (self.stderr, self.stdout):
            if router is not None:
                router.log = new
        if old is not self._temp:
            old.close()

    def keep_in(self, path: Path) -> None:
        """At the end, append what went to the temporary file to ``path`` (a folder we own)."""
        self._keep = path

    def stop(self) -> None:
        if self._sink is None:
            return
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        real_err, real_out, showwarning = self._real
        sys.stderr, sys.stdout, warnings.showwarning = real_err, real_out, showwarning
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        for router, real in ((self.stderr, real_err), (self.stdout, real_out)):
            if router is not None:
                with contextlib.suppress(Exception):
                    router.drain()
                router.active = False
                router.fallback = real
        if self._own_terminal:
            with contextlib.suppress(Exception):
                self._terminal.close()
        if self._sink is not self._temp:
            self._sink.close()
        self._sink = None
        with contextlib.suppress(OSError):
            self._temp.flush()
            self._temp.seek(0)
            text = self._temp.read()
            if self._keep is not None and text:
                self._keep.parent.mkdir(parents=True, exist_ok=True)
                with open(self._keep, "a", encoding="utf-8") as fh:
                    fh.write(text)
        self._temp.close()


_CURRENT: Capture | None = None


@contextlib.contextmanager
def capture() -> Iterator[Capture | None]:
    """Keep third-party output off the terminal for the block (see the module doc); a no-op under
    ``--verbose`` or when a capture is already running."""
    global _CURRENT
    if _LEVEL == "verbose" or _CURRENT is not None:
        yield _CURRENT
        return
    cap = Capture().start()
    _CURRENT = cap
    try:
        yield cap
    finally:
        _CURRENT = None
        cap.stop()


def keep_log_in(path: str | os.PathLike[str]) -> None:
    """Save what went to the running capture's temporary log in ``path`` at the end (a folder we own)."""
    if _CURRENT is not None:
        _CURRENT.keep_in(Path(path))


def log_to(path: str | os.PathLike[str] | None) -> None:
    """Point the running capture's log at ``path`` (no-op without a capture)."""
    if _CURRENT is not None:
        _CURRENT.switch(Path(path) if path is not None else None)


def info(message: str) -> None:
    """One line of edge_kd progress on stderr (dropped under --quiet)."""
    if _LEVEL != "quiet":
        print(message, file=sys.stderr, flush=True)


class Progress:
    """A bar with an ETA on a terminal; one line when the step ends otherwise.

    >>> with progress("teacher labels", total=len(batches)) as bar:   # doctest: +SKIP
    ...     for b in batches:
    ...         bar.update()
    """

    def __init__(self, label: str, total: int | None, unit: str = "", min_seconds: float = 2.0):
        self.label = label
        self.min_seconds = min_seconds
        self.total = total if total and total > 0 else None
        self.unit = unit
        self.done = 0
        self.start = time.perf_counter()
        self._drawn = 0.0
        self.tty = _LEVEL != "quiet" and bool(getattr(sys.stderr, "isatty", lambda: False)()) \
            and "PYTEST_CURRENT_TEST" not in os.environ

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        # Steps shorter than a second stay silent: the bar is for the long ones.
        if self.tty and now - self.start > 1.0 and (now - self._drawn > 0.1 or (self.total and self.done >= self.total)):
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self.start
        if self.total:
            frac = min(self.done / self.total, 1.0)
            eta = elapsed / frac - elapsed if frac > 0 else 0.0
            bar = "#" * int(frac * 24)
            text = f"\r{self.label} [{bar:<24}] {self.done}/{self.total}{self.unit} {frac:4.0%} " \
                   f"elapsed {_fmt(elapsed)} ETA {_fmt(eta)}"
        else:
            text = f"\r{self.label}: {self.done}{self.unit} elapsed {_fmt(elapsed)}"
        stream = bar_stream()
        stream.write(text + "\x1b[K")
        stream.flush()

    def close(self) -> None:
        elapsed = time.perf_counter() - self.start
        if elapsed < self.min_seconds:
            if self._drawn:
                bar_stream().write("\r\x1b[K")
            return
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        line = f"{self.label}: {count}{self.unit} in {_fmt(elapsed)}"
        if self.tty:
            stream = bar_stream()
            stream.write("\r" + line + "\x1b[K\n")
            stream.flush()
        elif _LEVEL != "quiet":
            print(line, file=sys.stderr, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bar_stream() -> Any:
    """Where a progress bar draws: the terminal itself (a bar line has no newline to wait for)."""
    if _CURRENT is not None and _CURRENT.stderr is not None:
        return _CURRENT.stderr.terminal
    return sys.stderr


def progress(label: str, total: int | None = None, unit: str = "", min_seconds: float = 2.0) -> Progress:
    """A progress bar for a step that may be long; steps shorter than ``min_seconds`` print nothing."""
    return Progress(label, total, unit, min_seconds)


def _fmt(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, s = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{s:02d}s"
    h, m = divmod(minutes, 60)
    return f"{h}h{m:02d}m"
