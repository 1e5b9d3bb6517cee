"""What the per-format exporters share: quieting converters' console noise and turning their
failures into one line that names the operator or problem."""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

from edge_kd.errors import InputError

_OP_PATTERNS = (
    r"(aten::?\.?[A-Za-z_0-9]+(?:\.[A-Za-z_0-9]+)?)",
    r"(torch\.ops\.[A-Za-z_0-9.]+)",
    r"operator[^\w]+([A-Za-z_:.0-9]+)",
)


class Captured:
    text: str = ""


@contextlib.contextmanager
def quiet_output() -> Iterator[Captured]:
    """Send stdout/stderr (also of C++ code) to a temp file while a converter runs.

    Converters print progress bars and pages of logs; the user gets one line, and on failure the
    captured text is available (``captured.text``) to pick the operator name from.
    """
    captured = Captured()
    if os.environ.get("EDGE_KD_VERBOSE"):
        yield captured
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            captured.text = sink.read()[-20000:].decode("utf-8", errors="replace")


def export_failure(fmt: str, exc: BaseException, log: str = "") -> InputError:
    """One line: which exporter failed and, when the message names one, the unsupported operator."""
    if isinstance(exc, InputError):
        return exc
    # Exporters wrap the real reason ("step 1/3 failed ... Next steps:"): report the innermost cause.
    root = exc
    seen = {id(exc)}
    while (root.__cause__ or root.__context__) is not None and id(root.__cause__ or root.__context__) not in seen:
        root = root.__cause__ or root.__context__
        seen.add(id(root))
    if root is not exc and str(root).strip():
        exc = root
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # converters colour their messages
    text = f"{message}\n{log}"
    first = next((line.strip() for line in message.splitlines() if line.strip()), type(exc).__name__)
    if len(first) > 240:
        first = first[:240] + "..."
    op = None
    for pattern in _OP_PATTERNS:
        m = re.search(pattern, text)
        if m:
            op = m.group(1)
            break
    named = f" (operator {op})" if op and op not in first else ""
    return InputError(f"cannot export the model to {fmt}{named}: {type(exc).__name__}: {first}")


def call_converter(fmt: str, fn, *args, **kwargs):
    """Run a converter quietly; a failure becomes one InputError line (operator named when possible)."""
    failure: BaseException | None = None
    with quiet_output() as log:
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # converters raise many types; all mean "this model does not convert"
            failure = exc
    if failure is not None:
        raise export_failure(fmt, failure, log.text) from None
    return result

