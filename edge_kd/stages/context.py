"""What the stages of one build share: the recipe, the data, the teacher (each loaded once), the
build-folder layout and the ``BuildStage`` base; the stages themselves are one module each
(``edge_kd.stages.{distill,prune,quantize,bundle,bench,gate}``).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_kd.pipeline import Stage
from edge_kd.pipeline.manifest import read_manifest

STUDENT_SPEC = Path("student") / "student.json"
ARTIFACT_DIR = "artifact"
PRUNED_DIR = "pruned"
#: The build's one teacher, recorded once (in the shared folder of the build).
TEACHER_RECORD = "teacher.json"


def _recipe_part(recipe: Any, *sections: str) -> dict[str, Any]:
    d = recipe.to_dict()
    return {k: d.get(k) for k in ("seed", "teacher", "data", "student", *sections)}


def _target_part(target: Any, *sections: str) -> dict[str, Any]:
    d = target.to_dict()
    return {k: d.get(k) for k in sections}


@dataclass
class BuildContext:
    """What the targets of one build share: the recipe, the data (loaded once), the teacher (built
    once, lazily) and the folder of teacher artifacts per runtime."""

    recipe: Any
    shared_dir: Path
    device: str = "auto"
    resume: bool = False
    log: Callable[[str], None] = print
    #: How the distill stage measures a candidate student's size (default: export it int8 to the target).
    measure: Callable | None = None
    _splits: Any = None
    _teacher: Any = None
    _teacher_fp: str = ""
    _teacher_state: Any = None
    _family: dict[str, tuple[Any, Any]] | None = None
    _unlabeled: Any = None

    @property
    def cache_root(self) -> Path:
        options = dict(self.recipe.distill.options or {})
        root = options.get("cache_dir") or self.recipe.data.cache_dir or os.environ.get(
            "EDGE_KD_CACHE", Path.home() / ".cache" / "edge_kd")
        return Path(root).expanduser()

    def load_data(self) -> Any:
        if self._splits is None:
            from edge_kd.recipe import load_splits

            splits = load_splits(self.recipe.data)
            if self.recipe.data.unlabeled:
                from edge_kd.data.text import TextDataset
                from edge_kd.distill.transfer import read_unlabeled

                if not isinstance(splits.train, TextDataset):
                    from edge_kd.errors import InputError

                    raise InputError(f"[data].unlabeled is text for the transfer set, but the training data is "
                                     f"{type(splits.train).__name__}")
                self._unlabeled = read_unlabeled(self.recipe.data.unlabeled)
            self._splits = splits
        return self._splits

    def unlabeled_texts(self) -> list[str]:
        """The recipe's ``[data] unlabeled`` texts (read and checked with the data), or none."""
        self.load_data()
        return list(self._unlabeled or [])

    @property
    def task(self) -> str:
        task = self.load_data().train.task
        return task if task in ("binary", "regression", "ranking") else "classification"

    def teacher(self) -> Any:
        """The build's one teacher: fitted once and shared by every target. Its weights are fingerprinted
        and kept right after the fit; a later call that finds them changed (a stage must never train or
        trace the shared model in place) puts the fitted weights back and says so, so every target
        distils from, and compares with, the same teacher."""
        from edge_kd.distill.cache import weights_fingerprint

        if self._teacher is None:
            from edge_kd.recipe import teacher_from_recipe

            self._teacher = teacher_from_recipe(self.recipe.teacher, self.load_data(), cache_dir=str(self.cache_root),
                                                seed=self.recipe.seed)
            if not is_torch_teacher(self._teacher):  # trees: fitted once, nothing traces them in place
                self._teacher_fp = self._teacher.fingerprint()
                return self._teacher
            self._teacher_fp = weights_fingerprint(self._teacher.model)
            self._teacher_state = {k: v.detach().clone() for k, v in self._teacher.model.state_dict().items()}
        elif is_torch_teacher(self._teacher) and weights_fingerprint(self._teacher.model) != self._teacher_fp:
            self.log("teacher: its weights changed after the fit; restoring the fitted weights")
            self._teacher.model.load_state_dict(self._teacher_state)
        return self._teacher

    def teacher_outputs(self, split: str, batch_size: int = 64) -> np.ndarray:
        """The teacher's outputs on a split of the build's data, cached by teacher weights and data
        fingerprint (the same cache entries as the distill stage's)."""
        from edge_kd.distill.cache import TeacherCache

        ds = getattr(self.load_data(), split)
        teacher = self.teacher()
        cache = TeacherCache(self.cache_root / "teacher-outputs")
        key = cache.key(self.teacher_fingerprint, ds.fingerprint(), "logits")
        return np.asarray(cache.get_or_compute(key, lambda: iter([teacher.predict(ds, batch_size=batch_size)]),
                                               n_rows=len(ds), meta={"teacher": teacher.name, "split": split}))

    def record_teacher(self, figures: dict[str, Any]) -> None:
        """Write the build's teacher (name, weights hash, PyTorch test metric) once, to
        ``<build>/_shared/teacher.json``; the per-target build.json files record the teacher measured
        through each runtime, whose numerics may differ in the last digits."""
        from edge_kd.pipeline import atomic_write_json

        path = self.shared_dir / TEACHER_RECORD
        if path.is_file():
            try:
                if json.loads(path.read_text()) == figures:
                    return
            except ValueError:
                pass
        atomic_write_json(path, figures)

    @property
    def teacher_fingerprint(self) -> str:
        """sha256 of the fitted teacher's weights (``edge_kd.distill.cache.weights_fingerprint``)."""
        self.teacher()
        return self._teacher_fp

    def student_data(self, family: str | None = None) -> tuple[Any, Any]:
        """(student family, StudentData) of the recipe, completed from the training data. ``family`` names
        one of the candidates of a recipe that lets the distill stage choose (``text_auto``); the later
        stages pass the one it chose (``ctx["student_family"]``)."""
        if self._family is None:
            self._family = {}
        key = family or self.recipe.student.family
        if key not in self._family:
            from edge_kd.distill.run import make_student_family

            made, sdata = make_student_family(self.recipe, self.load_data().train, family)
            if made is None:  # family "teacher": the student reads the data as the teacher does
                sdata.prepare = self.teacher().prepare
            self._family[key] = (made, sdata)
        return self._family[key]

    def sibling_stage(self, name: str, key: str, own_root: Path) -> tuple[Path, dict[str, Any], dict[str, Any]] | None:
        """(folder, stage record, manifest) of a stage completed with the same cache key in another target's
        folder of this build (a stage whose result does not depend on the target is then copied, not recomputed)."""
        for manifest_path in sorted(self.shared_dir.parent.glob("*/build.json")):
            root = manifest_path.parent
            if root.resolve() == own_root.resolve():
                continue
            try:
                manifest = read_manifest(root)
            except Exception:  # noqa: BLE001 - a damaged sibling manifest only means no reuse
                continue
            for record in manifest.get("stages", []):
                if record.get("name") == name and record.get("cache_key") == key and \
                        record.get("status") in ("ok", "reused"):
                    return root, record, manifest
        return None

    def adopt(self, name: str, key: str, build: Any, record: dict[str, Any], folder: Path) -> bool:
        """Copy ``folder`` (relative to a build root) from a sibling target whose stage ``name`` completed
        with ``key``; fills ``record`` and registers the copied files. False when there is none."""
        found = self.sibling_stage(name, key, build.root)
        if found is None or not (found[0] / folder).is_dir():
            return False
        source_root, source, manifest = found
        dest = build.root / folder
        tmp = dest.with_name(dest.name + ".adopting")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source_root / folder, tmp)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)  # atomic: a crash leaves the old folder or the complete copy
        for entry in manifest.get("artifacts", []):
            rel = Path(entry["path"])
            if not rel.is_absolute() and rel.parts[:len(folder.parts)] == folder.parts and (build.root / rel).is_file():
                build.add_artifact(build.root / rel, role=entry["role"], format=entry["format"])
        record["details"] = dict(source.get("details") or {})
        record["outputs"] = dict(source.get("outputs") or {})
        record["reused_from"] = source_root.name
        record["status"] = "reused"
        self.log(f"{name}: same inputs as the completed stage for {source_root.name}; copied its result")
        return True

    def student_arrays(self, split: str, value: Any, indices: np.ndarray | None = None,
                       family: str | None = None) -> tuple[np.ndarray, ...]:
        ds = getattr(self.load_data(), split)
        if indices is not None:
            ds = ds.subset(indices)
        _, sdata = self.student_data(family)
        return sdata.inputs(ds, value)

    def eval_indices(self, split: str, cap: int | None, seed: int = 0) -> np.ndarray:
        from edge_kd.data.splits import calibration_sample

        ds = getattr(self.load_data(), split)
        return calibration_sample(ds, cap, seed) if cap and cap < len(ds) else np.arange(len(ds))


def is_torch_teacher(teacher: Any) -> bool:
    """False for a teacher with no torch module (gradient-boosted trees, edge_kd.models.gbm)."""
    return hasattr(teacher.model, "state_dict")


def _rows(arrays: tuple[np.ndarray, ...], labels: np.ndarray) -> list[tuple[tuple[np.ndarray, ...], Any]]:
    """Per-sample (batch 1) inputs with labels: how a phone app calls the model."""
    return [(tuple(np.ascontiguousarray(a[i:i + 1]) for a in arrays), labels[i]) for i in range(len(labels))]


def _student_identity(spec_path: Path) -> tuple[Path, Path | None]:
    """What a student is for cache keys: its spec JSON and its weights file (the JSON names the file,
    not its bytes, so a retrained student with the same architecture must still change the key)."""
    weights = json.loads(spec_path.read_text()).get("weights")
    path = spec_path.parent / weights if weights else None
    return spec_path, (path if path is not None and path.is_file() else None)


def _load_student(spec_path: Path) -> Any:
    from edge_kd.models.spec import ModelSpec

    return ModelSpec.load(spec_path).build()


class BuildStage(Stage):
    """A stage of the build: it reads what the targets share (data, teacher) from one BuildContext."""

    def __init__(self, shared: BuildContext):
        self.shared = shared


# ---- distill ----------------------------------------------------------------------------------------
