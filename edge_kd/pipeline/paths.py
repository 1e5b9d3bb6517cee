"""The one output-path guard every writing command goes through (light imports only).

Promise to users: nothing they have is ever overwritten. A command never writes over one of its own
inputs (a profile, an artifact, data, weights, a manifest it reads), never over a file of a build
folder that the build's manifest does not record (someone else's file that happens to sit there), and
never outside the folder it was given because a profile or recipe name held ``../`` or a slash.

    out = check_output_file(args.json, option="--json", inputs=[artifact, profile_path])
    folder = safe_name(profile.name, what="target name", source=profile.source)
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from edge_kd.errors import InputError

#: Longest file name most file systems take (bytes of one path component).
MAX_NAME_BYTES = 255


def safe_name(name: object, *, what: str, source: str | None = None) -> str:
    """``name`` as one plain path component (a build-folder or file name), or InputError.

    Refuses separators, ``.``/``..``, absolute paths, control characters and names longer than the
    file system takes, so a profile called ``"../escape"`` cannot make a build write outside ``--out``.
    """
    where = f"{source}: " if source else ""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{where}{what} must be a non-empty string, got {name!r}")
    if "/" in name or "\\" in name or os.sep in name or (os.altsep and os.altsep in name):
        raise InputError(f"{where}{what} {name!r} must not contain a path separator")
    if name in (".", "..") or name.startswith(".."):
        raise InputError(f"{where}{what} {name!r} must not start with '..'")
    if os.path.isabs(name):
        raise InputError(f"{where}{what} {name!r} must not be an absolute path")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise InputError(f"{where}{what} {name!r} must not contain control characters")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise InputError(f"{where}{what} is {len(name)} characters long; file names take at most "
                         f"{MAX_NAME_BYTES} bytes")
    return name


def _check_components(path: Path, option: str) -> None:
    for part in path.parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise InputError(f"{option} {str(path)[:60]}...: a file name of {len(part)} characters is longer than "
                             f"the file system takes ({MAX_NAME_BYTES} bytes)")


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """``Path.resolve`` that never raises (a too-long name or a symlink loop is compared literally)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare it literally
        return Path(os.path.abspath(path))


def _dangling(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def _checked_name(path: str | os.PathLike[str], option: str, kind: str, hint: str) -> Path:
    """What every output path must be before anything else: not empty, names the file system takes,
    not a symlink to nothing."""
    p = Path(path)
    if not str(path).strip():
        raise InputError(f"{option}: empty {kind} name")
    _check_components(p, option)
    if _dangling(p):
        raise InputError(f"{option} {p}: is a symlink to a missing {kind}; {hint}")
    return p


def build_root_of(path: Path) -> Path | None:
    """The closest folder at or above ``path``'s folder that holds a build manifest, if any."""
    from edge_kd.pipeline.manifest import MANIFEST_NAME

    folder = resolve_path(path).parent
    for candidate in (folder, *folder.parents):
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    return None


def recorded_files(root: str | os.PathLike[str]) -> set[Path]:
    """Resolved paths of the files a build folder's manifest records (plus the manifest itself)."""
    from edge_kd.pipeline.manifest import MANIFEST_NAME

    root = resolve_path(root)
    files = {root / MANIFEST_NAME}
    try:
        data = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return files
    for entry in data.get("artifacts", []) if isinstance(data, dict) else []:
        rel = entry.get("path") if isinstance(entry, dict) else None
        if isinstance(rel, str) and rel:
            files.add(resolve_path(rel if os.path.isabs(rel) else root / rel))
    return files


def check_output_file(path: str | os.PathLike[str] | None, *, option: str,
                      inputs: Iterable[str | os.PathLike[str] | None] = ()) -> Path | None:
    """Check a report/output FILE path (``--json``, ``--junit``...) before any work; returns it.

    Refuses (InputError, exit 2): a directory, a dangling symlink, a name longer than the file
    system takes, any of ``inputs`` (the command's own input files, compared after resolving
    symlinks), and any file a build folder's manifest records (its artifacts and build.json).
    ``None`` and ``"-"`` (stdout) pass through.
    """
    if path is None or str(path) == "-":
        return None if path is None else Path(path)
    p = _checked_name(path, option, "file", "give a plain file name")
    if p.is_dir():
        raise InputError(f"{option} {p}: is a directory; give a file name")
    resolved = resolve_path(p)
    for item in inputs:
        if item is not None and str(item) and resolve_path(item) == resolved:
            raise InputError(f"{option} {p}: is an input of this command; edge-kd never writes over its inputs "
                             "(choose another file name)")
    root = build_root_of(p)
    if root is not None and resolved in recorded_files(root):
        raise InputError(f"{option} {p}: is a file of the build in {root} (recorded in its build.json); "
                         "choose a file outside the build's artifacts")
    return p


def check_output_dir(path: str | os.PathLike[str], *, option: str = "--out",
                     inputs: Iterable[str | os.PathLike[str] | None] = ()) -> Path:
    """Check an output FOLDER before any work: not a file, not a dangling symlink, sane names, and
    not one of the command's input files' folders being replaced (``inputs`` must stay outside
    the files this command writes; see ``check_owned``)."""
    p = _checked_name(path, option, "folder", "give a real folder")
    if p.exists() and not p.is_dir():
        raise InputError(f"{option} {p}: exists and is not a directory")
    resolved = resolve_path(p)
    for item in inputs:
        if item is not None and str(item) and resolve_path(item) == resolved:
            raise InputError(f"{option} {p}: is an input of this command; choose another folder")
    return p


def check_owned(folder: str | os.PathLike[str], names: Iterable[str], *, option: str = "--out",
                inputs: Iterable[str | os.PathLike[str] | None] = ()) -> None:
    """Before writing ``names`` into build ``folder``: each existing one must be a file the build
    recorded (so it is ours to replace) and none may be an input of the command."""
    folder = Path(folder)
    owned = recorded_files(folder) if folder.is_dir() else set()
    ins = {resolve_path(i) for i in inputs if i is not None and str(i)}
    for name in names:
        target = folder / name
        resolved = resolve_path(target)
        if resolved in ins:
            raise InputError(f"{option} {folder}: writing {name} would overwrite an input of this command")
        if (target.exists() or target.is_symlink()) and resolved not in owned:
            raise InputError(f"{option} {folder}: {name} exists and is not recorded in the build's build.json; "
                             "refusing to overwrite a file the build does not own")


def inside(root: str | os.PathLike[str], rel: str) -> bool:
    """Whether a manifest's artifact path stays inside the build folder (no absolute path, no ``..``
    escape, symlinks included)."""
    if os.path.isabs(rel):
        return False
    base = resolve_path(root)
    try:
        resolve_path(base / rel).relative_to(base)
    except ValueError:
        return False
    return True


def remove_replaced(root: str | os.PathLike[str], dropped: Iterable[dict], keep: Iterable[str | os.PathLike[str]]) -> None:
    """Delete the files of artifact records a stage just replaced (``Build.drop_artifacts``).

    Only files inside the build folder that still hold the recorded bytes are removed: they are the
    build's own. A file someone edited since is left where it is.
    """
    from edge_kd.pipeline.files import sha256_file

    kept = {resolve_path(k) for k in keep}
    for entry in dropped:
        rel = entry.get("path")
        if not isinstance(rel, str) or not inside(root, rel):
            continue
        path = Path(root) / rel
        if resolve_path(path) in kept or not path.is_file() or path.is_symlink():
            continue
        try:
            if sha256_file(path) == entry.get("sha256"):
                path.unlink()
        except OSError:
            pass
