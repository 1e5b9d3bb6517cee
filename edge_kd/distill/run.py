"""The distillation stage end to end: recipe + target profile -> a student sized to the budget,
trained against the teacher's cached outputs, saved as safetensors + ModelSpec JSON (+ the
preprocessing spec), with its decision and metrics recorded in the build manifest.

    from edge_kd.recipe import load_recipe
    from edge_kd.targets import load_target
    result = distill(load_recipe("examples/intent_banking77.toml"), load_target("ort-mobile"), "build/intent")
    result["test_metric"], result["sizing"]["bundle_bytes"]

Recipe fields used: ``[teacher]`` / ``[data]`` (through ``edge_kd.recipe``), ``[student]``
``family`` + ``options`` (the family's knob and fixed sizes, see ``edge_kd.models.students``; or
``"teacher"``: start from the teacher's own architecture and weights, see ``TEACHER_FAMILY``) +
``max_params`` + ``init`` (teacher-initialized rows, ``edge_kd.distill.teacher_init``); ``[distill]``
``losses``, ``temperature``, ``alpha``, ``epochs``, ``lr``, ``weight_decay``, ``batch_size``, ``seed``,
``transfer`` (the transfer set the teacher labels, with ``[data] unlabeled``; ``edge_kd.distill.transfer``)
and ``options`` (strict keys, see :class:`DistillOptions`).
"""
from __future__ import annotations

import copy
import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from edge_kd.errors import InputError

STUDENT_DIR = "student"
STUDENT_WEIGHTS = "student.safetensors"
STUDENT_SPEC = "student.json"
PREPROCESS_FILE = "preprocess.json"
LABELS_FILE = "labels.json"
#: ``[student] family = "teacher"``: the student starts as the teacher itself (architecture and fine-tuned
#: weights) and the prune stage makes it fit; the usual route when a pretrained trunk is the only way to
#: good accuracy on little data (product photos), where a student from scratch cannot catch up.
TEACHER_FAMILY = "teacher"
#: ``[student] family = "text_auto"``: the distill stage sizes and trains each of these to the budget and
#: keeps the first unless another is more accurate on validation beyond noise (``_choose_family``; options
#: per candidate: ``[student.options.<family>]``).
TEXT_AUTO = "text_auto"
TEXT_AUTO_FAMILIES = ("text_hashed", "text_wordpiece")
#: families whose ``dim`` option may be a list of widths to search (``student_candidates``)
WIDTH_SEARCH_FAMILIES = TEXT_AUTO_FAMILIES
WIDTH_MARK = "@dim="


def _candidate_options(recipe: Any, name: str) -> dict[str, Any]:
    """The options of candidate family ``name`` (per family under text_auto)."""
    opts = dict(recipe.student.options or {})
    if recipe.student.family == TEXT_AUTO:
        return dict(opts.get(name) or {})
    return opts


def _widths(name: str, opts: Mapping[str, Any]) -> list[int] | None:
    """The widths of a ``dim = [..]`` search in ``opts``, validated; None for a single width."""
    dims = opts.get("dim")
    if not isinstance(dims, (list, tuple)):
        return None
    if name not in WIDTH_SEARCH_FAMILIES:
        raise InputError(f"[student] options.dim = {list(dims)} (a width search) is for "
                         f"{', '.join(WIDTH_SEARCH_FAMILIES)}; family {name!r} takes one dim")
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims) \
            or len(set(dims)) != len(dims):
        raise InputError(f"[student] options.dim: a width search needs distinct positive integers, got {list(dims)}")
    if opts.get("knob") == "dim":
        raise InputError("[student] options.dim is a list of widths to search, but knob = 'dim' sizes the width "
                         "itself: use one or the other")
    return [int(d) for d in dims]


def student_candidates(recipe: Any) -> list[str | None]:
    """The students the distill stage sizes and trains, each to the budget, keeping the first unless
    another is more accurate on validation beyond noise: None for the recipe's one family; with
    ``text_auto`` each candidate family; with ``options.dim = [w1, w2, ...]`` one candidate per width
    (``"text_hashed@dim=32"``; the first width listed is the default). At a small budget fewer, wider rows
    can beat many narrow ones (Banking77 at 64 KiB: 1,024 buckets x 32 over 2,304 x 16, benchmarks/results/
    distill.json), and which wins depends on the data, so it is measured rather than assumed."""
    names = list(TEXT_AUTO_FAMILIES) if recipe.student.family == TEXT_AUTO else [recipe.student.family]
    out: list[str | None] = []
    for name in names:
        widths = _widths(name, _candidate_options(recipe, name))
        if widths:
            out += [f"{name}{WIDTH_MARK}{w}" for w in widths]
        else:
            out.append(name if recipe.student.family == TEXT_AUTO else None)
    return out


@dataclass(frozen=True)
class HintOption:
    student: str
    teacher: str
    weight: float = 1.0


@dataclass(frozen=True)
class DistillOptions:
    """``[distill].options``: trainer and sizing settings beyond the recipe's common fields."""

    patience: int = 4
    warmup_fraction: float = 0.05
    grad_clip: float = 0.0
    min_delta: float = 0.0
    size_margin: float = 0.05
    eval_batch_size: int = 512
    teacher_batch_size: int = 64
    cache_dir: str | None = None
    hints: tuple[HintOption, ...] = ()
    #: Also train the same student on the raw targets (labels only) and record its test metric beside
    #: the distilled one's: the measured answer to "does distillation help here?".
    compare_raw_targets: bool = False

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError("patience must be >= 1")
        if self.hints:
            raise ValueError("hints need teacher features cached from named teacher layers; the recipe "
                             "pipeline caches logits only: use edge_kd.distill.trainer.train_student with "
                             "DistillData.teacher_features from Python for FitNets hints")


def _options(recipe: Any) -> DistillOptions:
    from edge_kd.config import from_dict

    raw = dict(recipe.distill.options or {})
    return from_dict(DistillOptions, raw, source=f"{recipe.source}: [distill].options" if recipe.source else None)


def build_recipe_loss(names: tuple[str, ...], temperature: float, alpha: float, task: str):
    """The recipe's loss(es) with their common options applied where the loss takes them."""
    import inspect

    from torch import nn

    from edge_kd.distill.losses import LOSSES

    modules = []
    for name in names:
        cls = LOSSES.get(name)
        params = inspect.signature(cls.__init__).parameters
        kw = {k: v for k, v in (("temperature", temperature), ("alpha", alpha)) if k in params}
        if task == "regression" and name != "regression_kd":
            raise InputError(f"KD loss {name!r} is for classes; a forecasting (regression) student distils with "
                             "'regression_kd'")
        if name == "hinton" and task == "binary_single":
            raise InputError("hinton needs class logits; for one-logit binary/CTR students use 'bce_soft'")
        modules.append(cls(**kw))
    if len(modules) == 1:
        return modules[0]

    class _Sum(nn.Module):
        def __init__(self, parts):
            super().__init__()
            self.parts = nn.ModuleList(parts)
            self.alpha = max(getattr(p, "alpha", 1.0) for p in parts)

        def forward(self, s, t, y):
            return sum(p(s, t, y) for p in self.parts)

    return _Sum(modules)


# ---- student inputs per family ------------------------------------------------------------------
@dataclass
class StudentData:
    """Turns a data set into a student's input arrays for a given knob value, and the bundle's assets."""

    family: Any
    label_names: list[str]
    kind: str  # text | arrays | forecast | items (next-purchase: the item map ships as the preprocessing asset)
    #: the teacher's data preparation (image scaling), for a student that is the teacher itself
    prepare: Callable[[Any], Any] | None = None
    #: id(data set) -> (the data set, its feature hashes). The data set is kept so that its id cannot be
    #: reused by a later (temporary subset) data set and answered with these hashes.
    _hashes: dict[int, tuple[Any, list[list[int]]]] = field(default_factory=dict)
    #: forecast: the feature definitions and scaling the app applies (``ForecastPreprocessor.to_dict``)
    asset: dict[str, Any] | None = None
    #: next-purchase data: the history length and the catalog items never bought in training
    items: dict[str, Any] | None = None
    #: wordpiece students: the teacher's pieces ranked for this data (a student keeps a prefix)
    wordpieces: list[str] | None = None
    #: (id(data set), knob value) -> (the data set, its wordpiece ids)
    _wordpiece_ids: dict[tuple[int, Any], tuple[Any, np.ndarray]] = field(default_factory=dict)
    #: knob value -> its text spec: the size search asks for the bundle bytes of one value several times,
    #: and a wordpiece spec validates and indexes its whole vocabulary when built
    _text_specs: dict[Any, Any] = field(default_factory=dict)

    def items_asset(self, contract: dict[str, Any]) -> dict[str, Any]:
        from edge_kd.bundle.assets import items_asset

        assert self.items is not None
        return items_asset(self.label_names, self.items["untrained"], self.items["history"], contract)

    def text_spec(self, value: Any):
        """The preprocessing spec of the text student at knob ``value`` (hashed n-grams or wordpieces)."""
        if value not in self._text_specs:
            kw = self.family.kwargs_for(value)
            if self.wordpieces is not None:
                from edge_kd.preprocess.wordpiece import WordpiecePreprocessSpec

                spec = WordpiecePreprocessSpec(vocab=tuple(self.wordpieces[:int(kw["vocab"])]),
                                               max_ids=int(kw["max_ids"]), labels=tuple(self.label_names))
            else:
                from edge_kd.preprocess.text import TextPreprocessSpec

                spec = TextPreprocessSpec(buckets=int(kw["buckets"]), max_ids=int(kw["max_ids"]),
                                          labels=tuple(self.label_names),
                                          hashes_per_feature=int(kw.get("hashes_per_feature", 1)))
            self._text_specs[value] = spec
        return self._text_specs[value]

    def inputs(self, ds: Any, value: Any) -> tuple[np.ndarray, ...]:
        if self.kind == "text" and self.wordpieces is not None:
            # A smaller vocabulary splits words differently: ids are made per knob value (and kept,
            # since the size search and training ask for the same data set and value again).
            key = (id(ds), value)
            if key not in self._wordpiece_ids or self._wordpiece_ids[key][0] is not ds:
                self._wordpiece_ids[key] = (ds, self.text_spec(value).encode_batch(ds.texts))
            return (self._wordpiece_ids[key][1],)
        if self.kind == "text":
            from edge_kd.preprocess.text import hash_texts, ids_from_hashes

            spec = self.text_spec(value)
            key = id(ds)
            if key not in self._hashes or self._hashes[key][0] is not ds:
                self._hashes[key] = (ds, hash_texts(spec, ds.texts))
            return (ids_from_hashes(self._hashes[key][1], spec.buckets, spec.max_ids),)
        if self.prepare is not None:
            ds = self.prepare(ds)
        return tuple(np.ascontiguousarray(a) for a in ds.inputs())

    def _json_asset(self) -> tuple[str, Any]:
        """(file name, JSON payload) of a non-text student's preprocessing asset: the feature definitions
        and scaling of a forecast, the item-id map of a recommender, else the label names (the app maps
        output indices to them)."""
        if self.kind == "forecast":
            return PREPROCESS_FILE, self.asset
        if self.kind == "items":
            return PREPROCESS_FILE, self.items_asset({})
        return LABELS_FILE, self.label_names

    def extra_bytes(self, value: Any) -> int:
        import json

        if self.kind == "text":
            return self.text_spec(value).spec_bytes()
        return len(json.dumps(self._json_asset()[1], separators=(",", ":")).encode())

    def write_assets(self, out: Path, value: Any) -> list[tuple[Path, str]]:
        from edge_kd.pipeline.atomic import atomic_write_text

        if self.kind == "text":
            return [(self.text_spec(value).save(out / PREPROCESS_FILE), "preprocessing")]
        import json

        name, payload = self._json_asset()
        return [(atomic_write_text(out / name, json.dumps(payload, separators=(",", ":"))), "preprocessing")]


def make_student_family(recipe: Any, train: Any, family: str | None = None) -> tuple[Any, StudentData]:
    """The recipe's student family, completed from the data (class count, feature layout). ``family``
    picks one candidate of ``student_candidates`` (a ``text_auto`` family with its own options, and/or one
    width of a ``dim`` list: ``"text_hashed@dim=32"``); a bare family name with a width list takes the first
    width (the later stages read the data, which does not depend on the width)."""
    from edge_kd.models.students.base import StudentFamily, make_family

    width = None
    if family and WIDTH_MARK in family:
        family, _, width_text = family.partition(WIDTH_MARK)
        width = int(width_text)
    opts = dict(recipe.student.options or {})
    name = family or recipe.student.family
    if recipe.student.family == TEXT_AUTO:
        unknown = sorted(set(opts) - set(TEXT_AUTO_FAMILIES))
        if unknown:
            raise InputError(f"[student] family = {TEXT_AUTO!r} takes options per candidate family "
                             f"([student.options.text_hashed], [student.options.text_wordpiece]); got {unknown}")
        if name not in TEXT_AUTO_FAMILIES:
            raise InputError(f"[student] family = {TEXT_AUTO!r} chooses among {', '.join(TEXT_AUTO_FAMILIES)}; "
                             f"asked for {name!r}")
        opts = _candidate_options(recipe, name)
    elif family is not None and family != recipe.student.family:
        raise InputError(f"the recipe's student family is {recipe.student.family!r}, not {family!r}")
    widths = _widths(name, opts)
    if widths:
        if width is not None and width not in widths:
            raise InputError(f"student width {width} is not one of [student] options.dim = {widths}")
        opts["dim"] = width if width is not None else widths[0]
    elif width is not None:
        raise InputError(f"student candidate {family}{WIDTH_MARK}{width}: the recipe has no dim list to search")
    n = train.num_classes
    kind = "arrays"
    wordpieces = None
    if name == TEACHER_FAMILY:
        if hasattr(train, "texts"):
            raise InputError("student family 'teacher' starts from the teacher's own network, which reads the data "
                             "as it is; a text teacher tokenizes inside (use 'text_hashed' for text)")
        if opts or recipe.student.max_params:
            raise InputError("student family 'teacher' takes no options or max_params: the [prune] stage sizes it")
        return None, StudentData(None, list(train.label_names), kind)
    if name == "text_hashed":
        if not hasattr(train, "texts"):
            raise InputError(f"student family 'text_hashed' reads text, but the training data is {type(train).__name__}")
        family = make_family(name, num_classes=n, **opts)
        kind = "text"
    elif name == "text_wordpiece":
        if not hasattr(train, "texts"):
            raise InputError(f"student family 'text_wordpiece' reads text, but the training data is "
                             f"{type(train).__name__}")
        from edge_kd.preprocess.wordpiece import rank_wordpieces, teacher_vocabulary

        # The teacher's pieces, ranked on the labelled training text (a student keeps a prefix).
        wordpieces = rank_wordpieces(train.texts, teacher_vocabulary(opts.pop("vocab_file", None)))
        family = make_family(name, num_classes=n, pieces=len(wordpieces), **opts)
        kind = "text"
    elif name == "mobilenet":
        size = getattr(train, "size", None)
        if size is None:
            raise InputError(f"student family 'mobilenet' reads images, but the training data is {type(train).__name__}")
        opts.setdefault("resolution", size)
        if opts["resolution"] != size:
            raise InputError(f"[student].options.resolution = {opts['resolution']} but the images are loaded at "
                             f"{size}x{size}: load them at the student's resolution (data spec size=...)")
        family = make_family(name, num_classes=n, **opts)
    elif name == "tabular_mlp":
        if not hasattr(train, "num_numeric"):
            raise InputError(f"student family 'tabular_mlp' reads tabular data, but the training data is "
                             f"{type(train).__name__}")
        # Binary tasks keep two logits, like the tabular teacher, so every KD loss applies.
        family = make_family(name, num_dense=train.num_numeric, num_outputs=n,
                             cardinalities=list(train.cardinalities) or None, **opts)
    elif name == "forecast_mlp":
        # ---- demand forecasting (edge_kd.data.forecast) ----
        if getattr(train, "task", None) != "regression" or not hasattr(train, "raw_x"):
            raise InputError(f"student family 'forecast_mlp' reads forecasting data (transactions:...?task=forecast), "
                             f"but the training data is {type(train).__name__}")
        family = make_family(name, num_features=int(train.raw_x.shape[1]), **opts)
        asset = {**train.preprocessor.to_dict(), "labels": list(train.label_names)}
        if recipe.student.max_params:
            family = _capped(family, recipe.student.max_params)
        return family, StudentData(family, list(train.label_names), "forecast", asset=asset)
        # ---- end demand forecasting
    elif name == "item_bag":
        if getattr(train, "task", None) != "ranking":
            raise InputError(f"student family 'item_bag' reads next-purchase histories, but the training data is "
                             f"{type(train).__name__}")
        family = make_family(name, num_items=n, history=train.history_length, **opts)
        kind = "items"
    elif name == "custom":
        for key in ("factory", "knob", "low", "high", "inputs"):
            if key not in opts:
                raise InputError(f"[student] family 'custom' needs options.{key} (factory, knob, low, high, step, inputs)")
        family = StudentFamily.custom(opts.pop("factory"), knob=opts.pop("knob"), low=opts.pop("low"),
                                      high=opts.pop("high"), step=opts.pop("step", 1), inputs=opts.pop("inputs"),
                                      kwargs=opts.pop("kwargs", {}))
        if opts:
            raise InputError(f"[student] family 'custom': unknown options {sorted(opts)}")
    else:
        make_family(name)  # raises the registry's "unknown student family ... known: ..." error
        raise InputError(f"student family {name!r} needs data-specific setup this stage does not have")
    if recipe.student.max_params:
        family = _capped(family, recipe.student.max_params)
    items = {"history": train.history_length, "untrained": list(train.untrained)} if kind == "items" else None
    return family, StudentData(family, list(train.label_names), kind, items=items, wordpieces=wordpieces)


def _capped(family: Any, max_params: int) -> Any:
    allowed = tuple(v for v in family.values if family.num_params(v) <= max_params) \
        if len(family.values) <= 64 else _values_under(family, max_params)
    if not allowed:
        raise InputError(f"[student].max_params = {max_params} is below the smallest "
                         f"{family.name} student ({family.num_params(family.values[0])} parameters)")
    return dataclasses.replace(family, values=allowed)


def _values_under(family: Any, max_params: int) -> tuple[Any, ...]:
    lo, hi = 0, len(family.values) - 1
    if family.num_params(family.values[0]) > max_params:
        return ()
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if family.num_params(family.values[mid]) <= max_params:
            lo = mid
        else:
            hi = mid - 1
    return tuple(family.values[: lo + 1])


def check_teacher_labels(teacher: Any, train: Any, logits: np.ndarray) -> None:
    """Teacher outputs must cover exactly the data's classes (clear error otherwise)."""
    n = train.num_classes
    width = logits.shape[1] if logits.ndim == 2 else 1
    binary_ok = train.task == "binary" and width in (1, 2)
    if width != n and not binary_ok:
        raise InputError(f"the teacher outputs {width} classes but the data has {n} labels "
                         f"({', '.join(map(str, train.label_names[:6]))}{', ...' if n > 6 else ''}): the teacher "
                         f"must be trained on the same label set")
    known = list(getattr(teacher, "label_names", []) or [])
    if known:
        unknown = [name for name in train.label_names if name not in known]
        if unknown:
            raise InputError(f"labels in the data that the teacher does not know: {', '.join(unknown[:8])}"
                             f"{' ...' if len(unknown) > 8 else ''}")
        if list(known) != list(train.label_names):
            raise InputError("the teacher's label order differs from the data's; retrain the teacher's head "
                             "on this data (teacher.train = true)")


def distill(recipe: Any, target: Any, out_dir: str | os.PathLike[str], *, resume: bool = False,
            device: str = "auto", measure: Callable | None = None, log: Callable[[str], None] = print,
            shared_data: str | None = None) -> dict[str, Any]:
    """Run the distillation stage for ``recipe`` on ``target`` into the build folder ``out_dir``.

    The same stage ``edge-kd build`` runs (one code path, one cache key, one ``Build`` handle on the
    folder); with ``resume`` a completed stage with the same inputs is reused and an interrupted one
    continues from its last epoch checkpoint. Returns the stage details (also written to
    ``build.json``): sizing decision, epochs, best validation metric and the test metric of student
    and teacher in PyTorch.

    >>> details = distill(load_recipe("intent.toml"), load_target("ort-mobile"), "build/x")  # doctest: +SKIP
    """
    from edge_kd.stages.runner import run_stage

    if not recipe.distill.enabled:
        raise InputError(f"{recipe.source}: [distill].enabled is false; nothing to do")
    return run_stage("distill", recipe, target, out_dir, resume=resume, device=device, log=log,
                     measure=measure)["details"]


def run_distill(shared: Any, recipe: Any, target: Any, build: Any, record: dict[str, Any]) -> dict[str, Any]:
    """The distill stage's work: size a student to ``target``'s budget and train it against the teacher's
    cached outputs, saving it into ``build`` (an ``edge_kd.pipeline.Build``) and filling ``record``.

    ``shared`` (``edge_kd.stages.context.BuildContext``) holds what the targets of a build share: the data,
    the teacher and the cache folder, each loaded once. Under torchrun every rank trains; only the
    main rank writes files. Returns the stage details.
    """
    from edge_kd.distill.cache import TeacherCache
    from edge_kd.distill.ddp import barrier, init_distributed
    from edge_kd.distill.sizing import SizeBudget, choose_student
    from edge_kd.distill.trainer import DistillData, EvalData, TrainConfig, predict, train_student
    from edge_kd.metrics import metric_value
    from edge_kd.pipeline.records import metric_fields

    options = _options(recipe)
    env = init_distributed(shared.device)
    out = Path(build.root)
    splits = shared.load_data()
    train_ds, val_ds, test_ds = splits.train, splits.val, splits.test
    for name, ds in (("train", train_ds), ("val", val_ds), ("test", test_ds)):
        if len(ds) == 0:
            raise InputError(f"the {name} split is empty")
    task = train_ds.task if train_ds.task in ("binary", "regression") else "classification"
    metric = {"binary": "roc_auc", "regression": "wape"}.get(task, "accuracy")
    if task == "regression" and recipe.bench.metric in ("wape", "mae"):
        metric = recipe.bench.metric
    if train_ds.task == "ranking":  # next-purchase: labels are target sets, judged by recall@10
        task, metric = "ranking", "recall@10"
    log = shared.log

    t0 = time.perf_counter()
    from edge_kd.stages.context import is_torch_teacher

    teacher = shared.teacher()
    teacher_fp = shared.teacher_fingerprint
    cache = TeacherCache(shared.cache_root / "teacher-outputs")
    logits: dict[str, np.ndarray] = {}
    objective = getattr(recipe.student, "objective", "best-under-budget")
    # The validation split's teacher outputs are needed only to compare candidates with the teacher.
    teacher_splits = [("train", train_ds), ("test", test_ds)]
    if objective == "smallest-within-drop":
        teacher_splits.append(("val", val_ds))
    for name, ds in teacher_splits:
        key = cache.key(teacher_fp, ds.fingerprint(), "logits")
        # One predict() call per split: it prepares (tokenizes) the data set once.
        logits[name] = cache.get_or_compute(
            key, lambda ds=ds: iter([teacher.predict(ds, batch_size=options.teacher_batch_size)]),
            n_rows=len(ds), meta={"teacher": teacher.name, "split": name})
    check_teacher_labels(teacher, train_ds, logits["train"])
    teacher_seconds = time.perf_counter() - t0
    teacher_test = metric_value(np.asarray(logits["test"]), test_ds.labels, metric)
    where = "PyTorch" if is_torch_teacher(teacher) else f"{teacher.name} in Python"
    log(f"teacher {teacher.name}: test {metric} {teacher_test:.4f} ({where}; outputs cached in {cache.root})")
    if env.is_main:
        # A whole-network fit (unfreeze_last = "all") is the slow part of a build: its per-epoch
        # validation accuracy and CPU seconds are kept with the teacher so users can plan.
        fit = {k[len("full_finetune_"):]: v for k, v in getattr(teacher, "metrics", {}).items()
               if k.startswith("full_finetune_")}
        shared.record_teacher({"name": teacher.name, "weights_sha256": teacher_fp, "metric": metric,
                               "test_metric_pytorch": teacher_test, "test_rows": len(test_ds),
                               **({"finetune": fit} if fit else {})})

    # One family, or with text_auto each candidate: sized and trained alike, one kept on validation.
    candidates = student_candidates(recipe)
    family, sdata = shared.student_data(candidates[0])
    if family is None:
        details = _teacher_as_student(teacher, teacher_fp, teacher_test, teacher_seconds, metric, log)
        if env.is_main:
            record["outputs"] = _save_student(build, out / STUDENT_DIR, copy.deepcopy(teacher.model).cpu().eval(),
                                              _teacher_spec(teacher), sdata, None)
        barrier(env)
        record["details"] = details
        return details
    # The transfer set depends on the data kind only (text for every text_auto candidate).
    fit_ds, teacher_logits, transfer_details = _with_transfer_set(shared, recipe, teacher, teacher_fp, sdata,
                                                                  (train_ds, val_ds, test_ds), logits["train"],
                                                                  cache, options, log)
    budget = SizeBudget.from_target(target, options.size_margin)
    student_dir = out / STUDENT_DIR

    d = recipe.distill
    config = TrainConfig(epochs=max(1, d.epochs), batch_size=d.batch_size, lr=d.lr, weight_decay=d.weight_decay,
                         warmup_fraction=options.warmup_fraction, patience=options.patience,
                         min_delta=options.min_delta, metric=metric, seed=d.seed, device=shared.device,
                         grad_clip=options.grad_clip, eval_batch_size=options.eval_batch_size)
    labels = fit_ds.labels

    def fit_family(family: Any, sdata: StudentData, checkpoints: Path) -> dict[str, Any]:
        """Size ``family`` to the budget (per the objective) and train it; returns what was chosen."""
        if not recipe.student.max_params and is_torch_teacher(teacher):
            # A student larger than its teacher defeats the purpose even when the budget would allow it.
            teacher_params = sum(p.numel() for p in teacher.model.parameters())
            allowed = _values_under(family, teacher_params)
            if allowed and len(allowed) < len(family.values):
                log(f"sizing: capping {family.knob} at {allowed[-1]} (no more parameters than the teacher's "
                    f"{teacher_params:,}); set [student].max_params to override")
                family = dataclasses.replace(family, values=allowed)
        init = _student_init(recipe, teacher, family, sdata, fit_ds, log)
        loss_task = "binary_single" if family.kwargs.get("num_outputs") == 1 and task != "regression" else task
        loss = build_recipe_loss(tuple(d.losses), d.temperature, d.alpha, loss_task)
        init_details: dict[str, Any] = {"init": "random"}

        def train(value: Any, checkpoint_dir: Path) -> tuple[Any, Any]:
            student = family.build(value)
            if init is not None:
                init_details.update(init.apply(student))
            train_data = DistillData(sdata.inputs(fit_ds, value), labels, teacher_logits)
            val_data = EvalData(sdata.inputs(val_ds, value), val_ds.labels)
            return student, train_student(student, loss, train_data, val_data, config,
                                          checkpoint_dir=checkpoint_dir, resume=shared.resume, env=env)

        t1 = time.perf_counter()
        # A wordpiece student ships its vocabulary: the bundle's other bytes grow with the knob.
        extra = sdata.extra_bytes if sdata.wordpieces is not None else sdata.extra_bytes(family.values[0])
        try:
            decision = choose_student(family, target, measure=shared.measure, budget=budget, extra_bytes=extra,
                                      log=log)
        except InputError as exc:
            if len(candidates) == 1:
                raise
            # text_auto: a family whose smallest student is over the budget is left out, not fatal.
            log(f"student family {family.name}: {exc}")
            return {"family": family, "error": str(exc)}
        objective_details: dict[str, Any] = {"objective": objective}
        trained: dict[Any, tuple[Any, Any]] = {}
        if objective == "smallest-within-drop":
            from edge_kd.distill.sizing import smallest_within_drop
            from edge_kd.metrics import higher_is_better

            if not higher_is_better(metric):
                raise InputError(f"[student] objective = 'smallest-within-drop' searches on a higher-is-better "
                                 f"metric; {metric} is an error (lower is better): use 'best-under-budget' with "
                                 "max_params")

            teacher_val = metric_value(np.asarray(logits["val"]), val_ds.labels, metric)
            min_allowed = target.budgets.accuracy_drop.min_allowed(teacher_val)

            def evaluate(value: Any) -> float:
                student, res = train(value, checkpoints / f"{family.knob}-{value}")
                # Only the smallest good student so far (or the largest one, tried first, when it misses) can
                # still be chosen: keep that one in memory, not every candidate.
                if res.best_metric >= min_allowed or not trained:
                    trained.clear()
                    trained[value] = (student, res)
                return res.best_metric

            decision, tried = smallest_within_drop(family, target, decision, evaluate=evaluate,
                                                   min_allowed=min_allowed, measure=shared.measure,
                                                   extra_bytes=extra, log=log)
            objective_details.update(teacher_val_metric=teacher_val,
                                     accuracy_drop=str(target.budgets.accuracy_drop),
                                     min_allowed_val_metric=min_allowed, candidates=tried,
                                     within_drop=any(c["within_drop"] and c["value"] == decision.value
                                                     for c in tried))
        value = decision.value
        log(f"sizing: {family.name} {family.knob}={value} ({decision.params:,} params) -> bundle "
            f"{decision.bundle_bytes:,} bytes for a budget of {budget.describe()} ({decision.method}, {objective})")
        sizing_seconds = time.perf_counter() - t1
        student, result = trained[value] if value in trained else train(value, checkpoints)
        val_correct = None
        if len(candidates) > 1 and metric == "accuracy":  # text_auto compares the families row by row
            val_out = predict(student, sdata.inputs(val_ds, value), batch_size=config.eval_batch_size,
                              device=result.device)
            val_correct = np.asarray(val_out).argmax(axis=1) == np.asarray(val_ds.labels)
        return {"family": family, "sdata": sdata, "decision": decision, "objective": objective_details,
                "init": init_details, "student": student, "result": result, "sizing_seconds": sizing_seconds,
                "val_correct": val_correct}

    fits, left_out = [], []
    for name in candidates:
        family, sdata = shared.student_data(name)
        fit = fit_family(family, sdata, out / "checkpoints" / "distill" / (name or ""))
        fit["candidate"] = name or family.name
        (left_out if "error" in fit else fits).append(fit)
    if not fits:
        raise InputError(f"no student candidate fits target {target.name!r}: "
                         + "; ".join(f"{f['candidate']}: {f['error']}" for f in left_out))
    chosen = _choose_family(fits, objective)
    family, sdata, decision = chosen["family"], chosen["sdata"], chosen["decision"]
    student, result, value = chosen["student"], chosen["result"], decision.value
    objective_details, init_details = chosen["objective"], chosen["init"]
    sizing_seconds = sum(f["sizing_seconds"] for f in fits)
    if len(candidates) > 1:
        objective_details["family_rule"] = (f"{fits[0]['candidate']} unless another candidate is more accurate on "
                                            "the validation split beyond noise (row by row)")
        objective_details["family_search"] = [
            {"family": f["family"].name, "candidate": f["candidate"], "dim": f["family"].kwargs.get("dim"),
             "knob": f["family"].knob, "value": f["decision"].value,
             "params": f["decision"].params, "bundle_bytes": f["decision"].bundle_bytes,
             "val_metric": f["result"].best_metric, "chosen": f is chosen,
             **({"within_drop": f["objective"].get("within_drop")} if "within_drop" in f["objective"] else {})}
            for f in fits] + [{"family": f["family"].name, "candidate": f["candidate"], "chosen": False,
                               "error": f["error"]} for f in left_out]
        log(f"student: {chosen['candidate']} (validation {metric}: " + ", ".join(
            f"{f['candidate']} {f['result'].best_metric:.4f}" for f in fits) + ")")
    fits.clear()
    test_out = predict(student, sdata.inputs(test_ds, value), batch_size=config.eval_batch_size,
                       device=result.device)
    test_metric = metric_value(test_out, test_ds.labels, metric)
    student.cpu().eval()
    log(f"student: best val {metric} {result.best_metric:.4f} at epoch {result.best_epoch}; "
        f"test {metric} {test_metric:.4f} (teacher {teacher_test:.4f}, PyTorch)")
    figures, teacher_figures = metric_fields(metric, test_pytorch=test_metric, best_val=result.best_metric,
                                             teacher_test=teacher_test)
    raw_targets = None
    if options.compare_raw_targets:
        raw_targets = _train_on_raw_targets(family, value, sdata, train_ds, val_ds, test_ds, config, out, d, metric,
                                            shared, env, log, test_metric)
    details = {
        "sizing": {**decision.to_dict(), **objective_details}, "sizing_seconds": round(sizing_seconds, 2),
        "teacher": {"name": teacher.name, "weights_sha256": teacher_fp, **teacher_figures,
                    "seconds": round(teacher_seconds, 2), **_fit_record(teacher)},
        "student": {"family": family.name, "knob": family.knob, "value": value, "params": decision.params,
                    "spec": family.spec(value, STUDENT_WEIGHTS).to_dict()},
        "loss": {"losses": list(d.losses), "temperature": d.temperature, "alpha": d.alpha},
        "transfer": transfer_details, "init": dict(init_details),
        **({"data": splits.describe()} if task == "ranking" else {}),
        **figures, "epochs": result.epochs_run, "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early, "resumed_from_epoch": result.resumed_from_epoch,
        "history": result.history, "device": result.device, "world_size": result.world_size,
    }
    if raw_targets is not None:
        details["raw_targets"] = raw_targets
    if env.is_main:
        record["outputs"] = _save_student(build, student_dir, student, family.spec(value, STUDENT_WEIGHTS),
                                          sdata, value)
    barrier(env)  # every rank returns the student's files, so the main rank must have written them
    record["details"] = details
    return details


def _with_transfer_set(shared: Any, recipe: Any, teacher: Any, teacher_fp: str, sdata: StudentData,
                       splits: tuple[Any, Any, Any], train_logits: np.ndarray, cache: Any, options: DistillOptions,
                       log: Callable[[str], None]) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """The rows the student trains on: the training split plus the transfer set (``[distill.transfer]``,
    ``[data] unlabeled``) labelled by the teacher, whose outputs are cached like the splits'. Returns
    (data set, teacher logits, details for build.json: row counts and the teacher's CPU time)."""
    from edge_kd.data.text import TextDataset
    from edge_kd.distill.transfer import (NO_LABEL, build_transfer_set, is_text_transformer, teacher_neighbours,
                                          teacher_soft_targets)

    train_ds, val_ds, test_ds = splits
    cfg = recipe.distill.transfer
    unlabeled = shared.unlabeled_texts()
    if sdata.kind == "items" and cfg.enabled and cfg.augment_copies > 0:
        return _with_history_transfer_set(recipe, teacher, teacher_fp, train_ds, train_logits, cache, options, log)
    if sdata.kind != "text" or not isinstance(train_ds, TextDataset):
        reason = ("[distill.transfer] is off" if sdata.kind == "items" else
                  "the transfer set is built for text students and next-purchase histories")
        return train_ds, train_logits, {"rows": 0, "reason": reason}
    if not cfg.enabled:
        if unlabeled:
            raise InputError("[data].unlabeled is given but [distill.transfer].enabled is false: the teacher would "
                             "never label it")
        return train_ds, train_logits, {"rows": 0, "reason": "[distill.transfer].enabled = false"}
    seed = recipe.distill.seed
    neighbours = None
    if cfg.substitute > 0 and cfg.augment_copies > 0:
        if is_text_transformer(teacher):
            neighbours = teacher_neighbours(teacher, train_ds.texts, cfg.neighbours)
        else:
            log("transfer set: the teacher has no wordpiece embeddings; no neighbour-word substitution")
    ts = build_transfer_set(train_ds.texts, train_ds.labels, cfg, seed=seed, neighbours=neighbours,
                            unlabeled=unlabeled, exclude=list(val_ds.texts) + list(test_ds.texts))
    details: dict[str, Any] = {**ts.stats, "augment_copies": cfg.augment_copies, "max_rows": cfg.max_rows,
                               "word_dropout": cfg.word_dropout, "substitute": cfg.substitute,
                               "ngram_sample": cfg.ngram_sample, "neighbour_substitution": neighbours is not None,
                               "unlabeled_spec": recipe.data.unlabeled}
    if not len(ts):
        return train_ds, train_logits, {**details, "teacher_cpu_seconds": 0.0}
    key = cache.key(teacher_fp, TextDataset(ts.texts, ts.labels.clip(min=0), train_ds.label_names).fingerprint(),
                    "transfer-logits")
    logits, scored = _teacher_outputs_cached(
        cache, key, lambda: teacher_soft_targets(teacher, ts.texts, batch_size=options.teacher_batch_size),
        len(ts), teacher.name)
    labels = ts.labels_with_teacher(logits)
    details.update(scored)
    log(f"transfer set: {len(ts):,} rows ({ts.stats['augmented']:,} augmented, {ts.stats['unlabeled']:,} unlabeled)"
        + (" labelled by the teacher (cached)" if scored["teacher_outputs_cached"] else
           f" labelled by the teacher in {scored['teacher_cpu_seconds']:.0f} s of CPU"))
    fit = TextDataset(list(train_ds.texts) + ts.texts, np.concatenate([train_ds.labels, labels]),
                      train_ds.label_names, source=f"{train_ds.source} + transfer set")
    return fit, np.concatenate([np.asarray(train_logits, np.float32), logits.astype(np.float32)]), details


def _teacher_outputs_cached(cache: Any, key: str, score: Callable[[], tuple[np.ndarray, float]], n_rows: int,
                            teacher_name: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The teacher's outputs on transfer rows (``score()`` -> (outputs, CPU seconds)), computed once and
    cached like the splits'; with the figures build.json records."""
    cached = cache.has(key)
    spent: list[float] = []

    def batches():
        out, cpu = score()
        spent.append(cpu)
        yield out

    t0 = time.perf_counter()
    logits = np.asarray(cache.get_or_compute(key, batches, n_rows=n_rows,
                                             meta={"teacher": teacher_name, "split": "transfer"}))
    cpu = spent[0] if spent else 0.0
    return logits, {"teacher_cpu_seconds": round(cpu, 2), "teacher_wall_seconds": round(time.perf_counter() - t0, 2),
                    "teacher_outputs_cached": cached,
                    "teacher_rows_per_cpu_second": round(n_rows / cpu, 1) if cpu > 0 else None}


def _with_history_transfer_set(recipe: Any, teacher: Any, teacher_fp: str, train_ds: Any, train_logits: np.ndarray,
                               cache: Any, options: DistillOptions, log: Callable[[str], None]
                               ) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """The next-purchase transfer set: augmented copies of the training histories
    (``edge_kd.distill.transfer.augment_histories``), scored by the teacher over every product (cached
    like the splits' outputs), appended to the training rows."""
    from edge_kd.data.transactions import NextPurchaseDataset
    from edge_kd.distill.transfer import history_transfer_rows

    cfg = recipe.distill.transfer
    history, labels = history_transfer_rows(train_ds.history, train_ds.labels, cfg, seed=recipe.distill.seed)
    details: dict[str, Any] = {"rows": int(len(history)), "augmented": int(len(history)), "unlabeled": 0,
                               "augment_copies": cfg.augment_copies, "max_rows": cfg.max_rows,
                               "item_dropout": cfg.item_dropout, "recent_crop": cfg.recent_crop}
    if not len(history):
        return train_ds, train_logits, {**details, "teacher_cpu_seconds": 0.0}
    raw = [row[row > 0].astype(np.int32) - 1 for row in history]
    copies = NextPurchaseDataset(history, labels, train_ds.label_names, raw, source=f"{train_ds.source} (augmented)",
                                 facts=train_ds.facts, untrained=train_ds.untrained,
                                 history_length=train_ds.history_length)

    def score() -> tuple[np.ndarray, float]:
        cpu0 = time.process_time()
        out = teacher.predict(copies, batch_size=options.teacher_batch_size)
        return out, time.process_time() - cpu0

    logits, scored = _teacher_outputs_cached(cache, cache.key(teacher_fp, copies.fingerprint(), "transfer-logits"),
                                             score, len(copies), teacher.name)
    details.update(scored)
    log(f"transfer set: {len(copies):,} augmented histories"
        + (" scored by the teacher (cached)" if scored["teacher_outputs_cached"] else
           f" scored by the teacher in {scored['teacher_cpu_seconds']:.0f} s of CPU"))
    fit = NextPurchaseDataset(np.concatenate([train_ds.history, history]), np.concatenate([train_ds.labels, labels]),
                              train_ds.label_names, list(train_ds.raw) + raw,
                              source=f"{train_ds.source} + transfer set", facts=train_ds.facts,
                              untrained=train_ds.untrained, history_length=train_ds.history_length)
    return fit, np.concatenate([np.asarray(train_logits, np.float32), logits.astype(np.float32)]), details


def _choose_family(fits: list[dict[str, Any]], objective: str) -> dict[str, Any]:
    """The candidate family a ``text_auto`` build keeps. The first candidate (the default family) stays
    unless a later one is more accurate on the validation split beyond noise: row by row where per-row
    correctness is known (``metrics.significantly_more_correct``), else by the metric. Under
    ``smallest-within-drop`` the smallest bundle among those within the drop wins (else as above)."""
    from edge_kd.metrics import better, significantly_more_correct

    if objective == "smallest-within-drop":
        within = [f for f in fits if f["objective"].get("within_drop")]
        if within:
            return min(within, key=lambda f: f["decision"].bundle_bytes)
    pick = fits[0]
    for f in fits[1:]:
        if f.get("val_correct") is not None and pick.get("val_correct") is not None:
            if significantly_more_correct(f["val_correct"], pick["val_correct"]):
                pick = f
        elif better(f["result"].best_metric, pick["result"].best_metric, f["result"].metric):
            pick = f
    return pick


def _student_init(recipe: Any, teacher: Any, family: Any, sdata: StudentData, fit_ds: Any,
                  log: Callable[[str], None]) -> Any:
    """``[student] init``: a ``HashedInit`` that puts the teacher's wordpiece embeddings into the hashed
    student's rows, or None (random init). ``auto`` = teacher when the student is hashed text and the
    teacher a text transformer."""
    from edge_kd.distill.transfer import is_text_transformer

    mode = getattr(recipe.student, "init", "auto")
    possible = family.name in ("text_hashed", "text_wordpiece") and sdata.kind == "text" \
        and is_text_transformer(teacher)
    if mode == "random" or (mode == "auto" and not possible):
        return None
    if not possible:
        raise InputError(f"[student] init = \"teacher\" needs a text student (text_hashed, text_wordpiece) and a "
                         f"text-transformer teacher (wordpiece embeddings, e.g. minilm-l6); got family "
                         f"{family.name!r} and teacher {getattr(teacher, 'name', '?')!r}: use init = \"random\"")
    from edge_kd.distill.teacher_init import HashedInit, WordpieceInit

    t0 = time.perf_counter()
    if sdata.wordpieces is not None:
        winit = WordpieceInit.from_teacher(teacher, sdata.wordpieces)
        log(f"student init: rows from the teacher's wordpiece embeddings ({int(winit.known.sum()):,} of "
            f"{len(winit.pieces):,} ranked pieces; {time.perf_counter() - t0:.1f} s)")
        return winit
    init = HashedInit.from_teacher(teacher, sdata.text_spec(family.values[0]), fit_ds.texts)
    log(f"student init: rows from the teacher's wordpiece embeddings ({len(init.words):,} words, "
        f"{len(init.feature_hashes):,} features; {time.perf_counter() - t0:.1f} s)")
    return init
def _fit_record(teacher: Any) -> dict[str, Any]:
    """A teacher trained here (next-purchase): its fit figures (training CPU time, validation metrics) and
    the data rules' counts (rows excluded, cold start), for the report."""
    if getattr(teacher, "task", None) != "ranking":
        return {}
    return {"fit": {k: v for k, v in teacher.metrics.items() if k != "history"}}


def _save_student(build: Any, student_dir: Path, student: Any, spec: Any, sdata: StudentData,
                  value: Any) -> dict[str, str]:
    """Write the student's weights, ModelSpec and bundle assets and record them in the build; returns
    the stage outputs (paths relative to the build folder)."""
    from edge_kd.models.spec import save_state_dict

    save_state_dict(student, student_dir / STUDENT_WEIGHTS)
    spec.save(student_dir / STUDENT_SPEC)
    build.add_artifact(student_dir / STUDENT_WEIGHTS, role="student-weights", format="safetensors")
    build.add_artifact(student_dir / STUDENT_SPEC, role="student-spec", format="json")
    for path, role in sdata.write_assets(student_dir, value):
        build.add_artifact(path, role=role, format="json")
    return {"spec": str(Path(STUDENT_DIR) / STUDENT_SPEC), "weights": str(Path(STUDENT_DIR) / STUDENT_WEIGHTS)}


def _teacher_spec(teacher: Any) -> Any:
    from dataclasses import replace

    return replace(teacher.spec, weights=STUDENT_WEIGHTS)


def _teacher_as_student(teacher: Any, teacher_fp: str, teacher_test: float, teacher_seconds: float, metric: str,
                        log: Callable[[str], None]) -> dict[str, Any]:
    """``family = "teacher"``: the (fine-tuned) teacher is the student; the prune stage shrinks it with
    distillation from this unpruned copy. Returns the stage details."""
    from edge_kd.pipeline.records import metric_fields

    params = sum(p.numel() for p in teacher.model.parameters())
    spec = _teacher_spec(teacher)
    log(f"student: the teacher itself ({params:,} parameters); pruning sizes it for the target")
    figures, teacher_figures = metric_fields(metric, test_pytorch=teacher_test, teacher_test=teacher_test)
    return {
        "sizing": {"method": "teacher copy (the prune stage sizes it)", "params": params},
        "teacher": {"name": teacher.name, "weights_sha256": teacher_fp, **teacher_figures,
                    "seconds": round(teacher_seconds, 2)},
        "student": {"family": TEACHER_FAMILY, "knob": None, "value": None, "params": params, "spec": spec.to_dict(),
                    "preprocessing": dict(teacher.preprocessing)},
        **figures, "epochs": 0,
    }


def _train_on_raw_targets(family: Any, value: Any, sdata: StudentData, train_ds: Any, val_ds: Any, test_ds: Any,
                          config: Any, out: Path, d: Any, metric: str, shared: Any, env: Any,
                          log: Callable[[str], None], distilled_test: float) -> dict[str, Any]:
    """The same student (architecture, knob, epochs, optimiser, seed) trained on the labels only
    (the recipe's loss with ``alpha = 0``); returns its figures for the stage details."""
    from edge_kd.distill.trainer import DistillData, EvalData, predict, train_student
    from edge_kd.metrics import metric_value

    names = tuple(d.losses)
    loss = build_recipe_loss(names, d.temperature, 0.0, "regression" if train_ds.task == "regression" else "")
    student = family.build(value)
    res = train_student(student, loss, DistillData(sdata.inputs(train_ds, value), train_ds.labels, None),
                        EvalData(sdata.inputs(val_ds, value), val_ds.labels), config,
                        checkpoint_dir=out / "checkpoints" / "raw-targets", resume=shared.resume, env=env)
    test = metric_value(predict(student, sdata.inputs(test_ds, value), batch_size=config.eval_batch_size,
                                device=res.device), test_ds.labels, metric)
    log(f"student on raw targets (same architecture, alpha = 0): test {metric} {test:.4f} "
        f"(distilled {distilled_test:.4f}, PyTorch)")
    return {"loss": f"{'+'.join(names)} with alpha = 0 (labels only)", "metric": metric,
            "test_metric_pytorch": test, "best_val_metric": res.best_metric, "best_epoch": res.best_epoch,
            "epochs": res.epochs_run}
