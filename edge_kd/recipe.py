"""Recipes: what to build. One TOML file names the teacher, the data, the student family and the
settings of each stage; the target profile (``targets/*.toml``) says where it must run and the
budgets it must meet.

    name = "intent-bitext"
    target = "android-arm64-xnnpack"          # default profile; the CLI can override it

    [teacher]
    name = "minilm-l6"                        # a zoo teacher (edge_kd.models.teachers) ...
    options = { max_len = 64 }
    # factory = "shop.models:build"           # ... or a user's module:factory
    # weights = "ranker.safetensors"          #     + weights + inputs
    # inputs = ["features:1x40:float32"]
    # path = "build/teacher"                  # ... or a teacher saved by an earlier run

    [data]
    train = "csv:data/bitext-customer-support/customer_support.csv?text=instruction&label=intent"
    # val = "..."; test = "..."               # given splits; otherwise stratified fractions:
    val_fraction = 0.1
    test_fraction = 0.2

    [student]
    family = "text-cnn"

    [distill]
    epochs = 20
    [prune]
    enabled = false
    [quantize]
    calibration_samples = 256

Loading is strict (``edge_kd.config.from_dict``): an unknown key, a wrong type or a bad value is a
ConfigError naming the recipe file and the key. Strings may use ``${shared_data}`` (the shared
data root: ``load_recipe(shared_data=...)``, else ``$EDGE_KD_SHARED_DATA``, else
``<repo>/../shared/data``) and ``${recipe_dir}``. Relative paths (data specs, weights, cache) are
resolved against the recipe file's folder. Nothing here imports torch.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from edge_kd.config import from_dict, parsed, to_dict
from edge_kd.distill import KD_ALPHA, KD_TEMPERATURE
from edge_kd.errors import ConfigError, InputError
from edge_kd.units import AccuracyDrop, parse_accuracy_drop, parse_bytes, parse_ms

#: The repository root (examples and benchmarks read ``<repo>/../shared/data`` by default).
REPO_ROOT = Path(__file__).resolve().parent.parent
QUANT_METHODS = ("auto", "minmax", "moving_average", "percentile", "entropy", "mse")
_VAR = re.compile(r"\$\{([^}]*)\}")


def default_shared_data() -> Path:
    """``$EDGE_KD_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("EDGE_KD_SHARED_DATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data").resolve()


@dataclass(frozen=True)
class FinetuneConfig:
    """Fitting a zoo teacher to the task (see ``edge_kd.models.finetune.FinetuneSettings``):
    a linear head on cached backbone features, then optionally the last ``unfreeze_last`` blocks, or
    with ``unfreeze_last = "all"`` the whole network end to end (``unfreeze_epochs`` at peak
    ``unfreeze_lr``, batch ``unfreeze_batch_size``, ``label_smoothing``, ``warmup_epochs``, image
    ``augment``ation; cached in ``<cache>/teachers/`` and checkpointed every epoch).
    For ``tabular-mlp`` only ``epochs``, ``lr``, ``batch_size``, ``weight_decay`` and ``seed`` apply."""

    epochs: int = 100
    lr: float = 1e-2
    weight_decay: float = 1e-4
    batch_size: int = 256
    unfreeze_last: int | Literal["all"] = 0
    unfreeze_epochs: int = 2
    unfreeze_lr: float = 1e-4
    unfreeze_batch_size: int = 0
    label_smoothing: float = 0.0
    warmup_epochs: float = 1.0
    augment: bool = True

    def __post_init__(self) -> None:
        if not (0 <= self.label_smoothing < 1) or self.warmup_epochs < 0 or self.unfreeze_batch_size < 0:
            raise ValueError("label_smoothing must be in [0, 1), warmup_epochs and unfreeze_batch_size >= 0")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.lr <= 0 or self.unfreeze_lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr and unfreeze_lr must be > 0, weight_decay >= 0")
        if (self.unfreeze_last != "all" and self.unfreeze_last < 0) or self.unfreeze_epochs < 0:
            raise ValueError("unfreeze_last and unfreeze_epochs must be >= 0")


@dataclass(frozen=True)
class TeacherConfig:
    """Exactly one of: ``name`` (zoo teacher, with builder ``options``), ``factory`` (a user's
    ``module:factory`` with ``weights``, ``inputs``, ``kwargs``) or ``path`` (a saved teacher).
    ``train``: fit a zoo teacher to the task first (head fine-tune / MLP training)."""

    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    factory: str | None = None
    weights: str | None = None
    inputs: tuple[str, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    train: bool = True
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def __post_init__(self) -> None:
        given = [k for k in ("name", "factory", "path") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of 'name' (zoo teacher), 'factory' (module:factory) or 'path' "
                             f"(saved teacher); got {', '.join(given) or 'none'}")
        if self.factory and not self.inputs:
            raise ValueError("'factory' needs 'inputs', e.g. inputs = [\"image:1x3x224x224:float32\"]")
        if self.name:
            from edge_kd.models.teachers import TEACHERS  # lean: builders import torch only when called

            try:
                TEACHERS.get(self.name)
            except InputError as exc:
                raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class DataConfig:
    """Data specs (``edge_kd.data.spec``). Without ``test``/``val``, stratified fractions of
    ``train`` (seeded) are held out; preprocessing statistics are fitted on train only."""

    train: str
    val: str | None = None
    test: str | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    cache_dir: str | None = None
    #: Unlabeled in-domain text for the transfer set, ``csv:PATH?text=COLUMN`` (``edge_kd.distill.transfer``).
    unlabeled: str | None = None

    def __post_init__(self) -> None:
        if not (0 < self.val_fraction < 1) or not (0 < self.test_fraction < 1) \
                or self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction and test_fraction must be in (0, 1) with a sum below 1")
        from edge_kd.data.spec import split_spec

        for key in ("train", "val", "test"):
            value = getattr(self, key)
            if value is not None:
                try:
                    split_spec(value)
                except InputError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        if self.unlabeled is not None:
            from edge_kd.data.spec import split_spec

            try:
                kind, _, opts = split_spec(self.unlabeled)
            except InputError as exc:
                raise ValueError(f"unlabeled: {exc}") from None
            if kind != "csv" or not opts.get("text") or set(opts) - {"text"}:
                raise ValueError(f"unlabeled = {self.unlabeled!r}: unlabeled text is csv:PATH?text=COLUMN")


#: ``[student] init``: where the student's first weights come from.
STUDENT_INITS = ("auto", "teacher", "random")


@dataclass(frozen=True)
class StudentConfig:
    """The student family (registered by the distillation stage) and its knobs. ``max_params`` /
    ``max_macs`` cap the size search; the target's size and latency budgets still apply.
    ``objective``: "best-under-budget" (the largest student that fits the size budget) or
    "smallest-within-drop" (the smallest one whose validation metric is within the profile's
    ``budgets.accuracy_drop`` of the teacher's; see ``edge_kd.distill.sizing.smallest_within_drop``)."""

    family: str
    options: dict[str, Any] = field(default_factory=dict)
    max_params: int | None = None
    max_macs: int | None = None
    objective: str = "best-under-budget"
    init: str = "auto"

    def __post_init__(self) -> None:
        from edge_kd.distill.sizing import OBJECTIVES  # lean: sizing imports no torch at module level

        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective = {self.objective!r} is unknown; known: {', '.join(OBJECTIVES)}")
        if self.init not in STUDENT_INITS:
            raise ValueError(f"init = {self.init!r} is unknown; known: {', '.join(STUDENT_INITS)}")
        for key in ("max_params", "max_macs"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ValueError(f"{key} must be >= 1")


@dataclass(frozen=True)
class TransferConfig:
    """``[distill.transfer]``: the text the teacher labels besides the training rows
    (``edge_kd.distill.transfer``): ``augment_copies`` meaning-keeping copies of every training sentence
    (per word: dropped with ``word_dropout``, replaced by one of its ``neighbours`` nearest words in the
    teacher's wordpiece embedding space with ``substitute``; then cut to a 1-5 word window with
    ``ngram_sample``) plus ``[data] unlabeled`` text, deduplicated, at most ``max_rows`` rows. For a
    next-purchase student the copies are of the purchase histories instead: each product dropped with
    ``item_dropout``, then cut to its most recent products with ``recent_crop``."""

    enabled: bool = True
    augment_copies: int = 2
    max_rows: int | None = 50_000
    word_dropout: float = 0.1
    substitute: float = 0.1
    # 0.25 (Tang et al. 2019's n-gram sampling) cost 0.6-0.85 pt on Banking77 at every student size
    # (benchmarks/results/distill_ingredients.md, five seeds), so copies keep whole sentences by default.
    ngram_sample: float = 0.0
    neighbours: int = 8
    item_dropout: float = 0.2
    recent_crop: float = 0.3

    def __post_init__(self) -> None:
        if self.augment_copies < 0 or self.augment_copies > 100:
            raise ValueError(f"augment_copies must be in 0..100, got {self.augment_copies}")
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {self.max_rows}")
        for key in ("word_dropout", "substitute", "ngram_sample", "item_dropout", "recent_crop"):
            if not 0 <= getattr(self, key) < 1:
                raise ValueError(f"{key} must be in [0, 1), got {getattr(self, key)}")
        if self.word_dropout + self.substitute >= 1:
            raise ValueError("word_dropout + substitute must be below 1 (a copy must keep some words)")
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {self.neighbours}")


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation.

    ``losses``: KD loss names (``edge_kd.distill.losses.LOSSES``: hinton, mse, logit_regression,
    bce_soft, ce, ...); e.g. hinton = ``alpha`` * T^2 * KL(teacher/T || student/T) + (1 - ``alpha``) * CE.
    ``options``: loss- or trainer-specific settings passed through unchanged.
    """

    enabled: bool = True
    losses: tuple[str, ...] = ("hinton",)
    temperature: float = KD_TEMPERATURE
    alpha: float = KD_ALPHA
    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    transfer: TransferConfig = field(default_factory=TransferConfig)

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError("epochs must be >= 0 and batch_size >= 1")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0 and weight_decay >= 0")
        if not self.losses:
            raise ValueError("losses must name at least one loss")


@dataclass(frozen=True)
class PruneConfig:
    """Structured channel pruning (field names follow ``edge_kd.prune.pruner.PruneConfig``).

    ``goal``/``amount``: ``params`` or ``macs`` with ``amount`` the fraction to REMOVE in (0, 1)
    (macs 0.5 = 2x fewer multiply-adds), or ``latency`` with ``amount`` the fraction of the unpruned
    model's latency to keep (0.5 = twice as fast) or a p50 budget such as ``"12ms"``, channels chosen per
    group by the target runtime's measured latency table (``edge_kd.prune.latency``);
    ``criterion`` ranks channels (names in ``edge_kd.prune.criteria``: l1, l2, bn, taylor);
    ``steps`` iterative rounds, ``step_sizes`` how a MACs/params goal is split over them (``even``: the same
    share of the original each round; ``geometric``: the same share of what is left, gentler late rounds);
    ``finetune_epochs`` of recovery after each step (the distillation
    trainer against the unpruned model, at ``finetune_lr`` peak learning rate, batch ``[distill].batch_size``)
    and ``final_epochs`` after the last one (default: ``finetune_epochs``; many small steps with a short
    recovery each and a long final one converge best on a CPU); ``round_to`` overrides the target profile's
    channel multiple; ``protect``: module names kept whole;
    ``protect_residual``: keep the width of residual streams, prune only inside blocks (far less damage
    per step on inverted-residual convnets, see ``edge_kd.prune.pruner.PruneConfig``); ``augment``: recover
    on random views of the photos, each scored by the unpruned model (``edge_kd.prune.schedule.RecoveryConfig``).
    """

    enabled: bool = False
    goal: Literal["params", "macs", "latency"] = "macs"
    amount: float | str = 0.5
    criterion: str = "l2"
    steps: int = 1
    step_sizes: Literal["even", "geometric"] = "even"
    finetune_epochs: int = 2
    final_epochs: int | None = None
    finetune_lr: float = 1e-4
    round_to: int | None = None
    protect: tuple[str, ...] = ()
    protect_residual: bool = False
    augment: bool = False

    def __post_init__(self) -> None:
        if self.goal in ("params", "macs") and (isinstance(self.amount, str) or not 0 < self.amount < 1):
            raise ValueError(f"amount is the fraction of {self.goal} to remove and must be a number in (0, 1), "
                             f"got {self.amount!r}")
        if self.goal == "latency":
            self.latency_budget()
        if self.steps < 1 or self.finetune_epochs < 0 or (self.final_epochs is not None and self.final_epochs < 0):
            raise ValueError("steps must be >= 1, finetune_epochs and final_epochs >= 0")
        if not self.finetune_lr > 0:
            raise ValueError(f"finetune_lr must be > 0, got {self.finetune_lr}")
        if self.round_to is not None and self.round_to < 1:
            raise ValueError("round_to must be >= 1")

    def latency_budget(self) -> tuple[float, str]:
        """(value, unit) of a latency goal's ``amount``: a number is the fraction of the unpruned model's
        latency to keep, in (0, 1); a duration string ("12ms") a p50 budget in ms."""
        from edge_kd.units import parse_ms

        if isinstance(self.amount, str):
            ms = parse_ms(self.amount)
            if not ms > 0:
                raise ValueError(f"a latency budget must be positive, got {self.amount!r}")
            return ms, "ms"
        if not 0 < self.amount < 1:
            raise ValueError(f"a latency goal's amount is the fraction of the unpruned latency to keep, in (0, 1) "
                             f"(0.5 = twice as fast), or a duration such as \"12ms\"; got {self.amount!r}")
        return float(self.amount), "fraction"


@dataclass(frozen=True)
class QuantizeConfig:
    """Post-training static quantization; ``None`` fields take the target profile's values.
    ``method``: range estimation (auto|minmax|moving_average|percentile|entropy|mse);
    ``calibration_samples``: rows drawn from train, stratified by label (``calibration_sample``);
    ``eval_samples``: validation rows (stratified; 0 = all) on which every candidate artifact's metric is
    measured through the runtime before one ships. 300 suits classification; an error metric dominated by a
    few large rows (WAPE on a few best-sellers) needs all of them, or int8 looks safe here and fails the gate."""

    enabled: bool = True
    mode: Literal["int8", "fp32"] | None = None
    method: Literal["auto", "minmax", "moving_average", "percentile", "entropy", "mse"] | None = None
    calibration_samples: int | None = None
    percentile: float | None = None
    eval_samples: int = 300

    def __post_init__(self) -> None:
        if self.calibration_samples is not None and self.calibration_samples < 1:
            raise ValueError("calibration_samples must be >= 1")
        if isinstance(self.eval_samples, bool) or not isinstance(self.eval_samples, int) or self.eval_samples < 0:
            raise ValueError(f"eval_samples must be an integer >= 0 (0 = every validation row), got {self.eval_samples!r}")
        if self.percentile is not None and not 50 < self.percentile <= 100:
            raise ValueError(f"percentile must be in (50, 100], got {self.percentile}")


@dataclass(frozen=True)
class BudgetOverrides:
    """``[budgets]``: this model's own limits within its target's, e.g. a 1 MiB share of an app's 4 MiB
    model budget. Same keys and units as a profile's ``[budgets]``; each one given replaces the profile's
    value for this build (sizing, the shipped-artifact choice and the gate all see it, and build.json
    records it), and may only be tighter: the profile holds the device's and the app's hard limits."""

    artifact_size: int | None = parsed(parse_bytes, default=None, metadata={"to_json": int})
    download_size: int | None = parsed(parse_bytes, default=None, metadata={"to_json": int})
    latency_p90: float | None = parsed(parse_ms, default=None, metadata={"to_json": lambda v: f"{v:g}ms"})
    accuracy_drop: AccuracyDrop | None = parsed(parse_accuracy_drop, default=None, metadata={"to_json": str})

    def __post_init__(self) -> None:
        for name in ("artifact_size", "download_size", "latency_p90"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"budgets.{name} must be positive")

    def apply(self, profile: Any, source: str | None = None) -> Any:
        """``profile`` with these budgets in place of its own; a looser value is a ConfigError."""
        import dataclasses

        changes: dict[str, Any] = {}
        for name in ("artifact_size", "download_size", "latency_p90"):
            mine, theirs = getattr(self, name), getattr(profile.budgets, name)
            if mine is None:
                continue
            if mine > theirs:
                raise ConfigError(f"{mine:g} is looser than the target {profile.name!r}'s {theirs:g}; a recipe's "
                                  "[budgets] may only tighten its target's", source=source, key=f"budgets.{name}")
            changes[name] = mine
        if self.accuracy_drop is not None:
            theirs = profile.budgets.accuracy_drop
            if self.accuracy_drop.kind != theirs.kind or self.accuracy_drop.value > theirs.value:
                raise ConfigError(f"{self.accuracy_drop} is not a tighter {theirs.kind} drop than the target "
                                  f"{profile.name!r}'s {theirs}; a recipe's [budgets] may only tighten its target's",
                                  source=source, key="budgets.accuracy_drop")
            changes["accuracy_drop"] = self.accuracy_drop
        if not changes:
            return profile
        return dataclasses.replace(profile, budgets=dataclasses.replace(profile.budgets, **changes))


@dataclass(frozen=True)
class BenchConfig:
    """Accuracy through the runtime: ``eval_samples`` test rows (stratified; None = all) and the
    ``metric`` gated against the teacher (auto = ROC-AUC for binary tasks, WAPE for forecasting, else
    accuracy)."""

    eval_samples: int | None = None
    metric: Literal["auto", "accuracy", "roc_auc", "wape", "mae", "recall@10", "ndcg@10"] = "auto"

    def __post_init__(self) -> None:
        if self.eval_samples is not None and self.eval_samples < 1:
            raise ValueError("eval_samples must be >= 1")


@dataclass(frozen=True)
class Recipe:
    """A whole recipe. ``source`` is the file it came from (set by ``load_recipe``)."""

    name: str
    teacher: TeacherConfig
    data: DataConfig
    student: StudentConfig
    description: str = ""
    target: str | None = None
    seed: int = 0
    distill: DistillConfig = field(default_factory=DistillConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    budgets: BudgetOverrides = field(default_factory=BudgetOverrides)
    source: str | None = field(default=None, init=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = to_dict(self)
        d.pop("source", None)
        return {"source": self.source, **d}


def _substitute(value: Any, variables: Mapping[str, str], source: str, key: str) -> Any:
    if isinstance(value, str):
        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in variables:
                raise ConfigError(f"unknown variable ${{{name}}}; known: "
                                  + ", ".join(f"${{{k}}}" for k in sorted(variables)), source=source, key=key)
            return variables[name]

        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, variables, source, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables, source, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def _resolve_path(value: Any, base: Path) -> Any:
    if not isinstance(value, str) or not value:
        return value
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (base / p).resolve())


def _resolve_spec(value: Any, base: Path) -> Any:
    """Make the PATH of ``kind:PATH?opts`` absolute (left alone when it is not a spec: the
    DataConfig check then reports it)."""
    if not isinstance(value, str) or ":" not in value:
        return value
    kind, _, rest = value.partition(":")
    path, sep, query = rest.partition("?")
    if not path:
        return value
    return f"{kind}:{_resolve_path(path, base)}{sep}{query}"


def recipe_from_dict(raw: Mapping[str, Any], *, source: str | os.PathLike[str] | None = None,
                     shared_data: str | os.PathLike[str] | None = None) -> Recipe:
    """Build a Recipe from a mapping (what ``load_recipe`` does after reading the TOML)."""
    src = str(source) if source is not None else None
    base = Path(source).resolve().parent if source is not None else Path.cwd()
    variables = {"shared_data": str(Path(shared_data) if shared_data is not None else default_shared_data()),
                 "recipe_dir": str(base)}
    data = _substitute(dict(raw), variables, src or "<recipe>", "")
    teacher = data.get("teacher")
    if isinstance(teacher, dict):
        teacher = dict(teacher)
        for key in ("weights", "path"):
            if key in teacher:
                teacher[key] = _resolve_path(teacher[key], base)
        data["teacher"] = teacher
    dcfg = data.get("data")
    if isinstance(dcfg, dict):
        dcfg = dict(dcfg)
        for key in ("train", "val", "test", "unlabeled"):
            if key in dcfg:
                dcfg[key] = _resolve_spec(dcfg[key], base)
        if "cache_dir" in dcfg:
            dcfg["cache_dir"] = _resolve_path(dcfg["cache_dir"], base)
        data["data"] = dcfg
    target = data.get("target")
    if isinstance(target, str) and (target.endswith(".toml") or os.sep in target):
        data["target"] = target = _resolve_path(target, base)
    recipe = from_dict(Recipe, data, source=src)
    if recipe.target is not None:
        from edge_kd.targets import load_target

        try:
            load_target(recipe.target)
        except ConfigError:
            raise
        except InputError as exc:
            raise ConfigError(str(exc), source=src, key="target") from None
    object.__setattr__(recipe, "source", src)
    return recipe


def load_recipe(path: str | os.PathLike[str], *, shared_data: str | os.PathLike[str] | None = None) -> Recipe:
    """Read and validate a recipe TOML.

    >>> recipe = load_recipe("examples/intent_bitext.toml")
    >>> recipe.teacher.name, recipe.distill.temperature
    ('minilm-l6', 4.0)
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: recipe file does not exist")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(p)) from None
    except UnicodeDecodeError:
        raise ConfigError("not a UTF-8 text file", source=str(p)) from None
    return recipe_from_dict(raw, source=p, shared_data=shared_data)


def load_splits(cfg: DataConfig) -> "Any":
    """The train/val/test data sets a recipe's ``[data]`` names (``edge_kd.data.Splits``).

    Given ``val``/``test`` specs are loaded with the training set's label names; missing ones are
    stratified fractions (of train for ``val``; of train for ``test`` too when no test is given).

    >>> splits = load_splits(load_recipe("examples/intent_bitext.toml").data)
    """
    from edge_kd.data.spec import parse_data_spec
    from edge_kd.data.splits import Splits, split_off, stratified_split_indices

    def parse(spec: str, **kw: Any):
        try:
            return parse_data_spec(spec, cache_dir=cfg.cache_dir, **kw)
        except InputError as exc:
            if "does not exist" in str(exc) and str(default_shared_data()) in spec:
                raise InputError(f"{exc}; the shared data root is {default_shared_data()}: set "
                                 "EDGE_KD_SHARED_DATA (or pass shared_data) to point elsewhere") from None
            raise

    full = parse(cfg.train)
    if full.task == "ranking" and (cfg.val is None or cfg.test is None):
        # A random split of invoices would put a customer's later baskets in training: split by date.
        raise InputError(f"{cfg.train}: next-purchase data is split by invoice date; give [data] val and test as "
                         "the same transactions spec with split=val and split=test")

    def load_other(spec: str, what: str):
        ds = parse(spec, label_names=full.label_names)
        if list(ds.label_names) != list(full.label_names):
            raise InputError(f"{what} data {spec!r} has labels {ds.label_names[:5]}..., the training data "
                             f"{full.label_names[:5]}...: they must be the same classes")
        if len(ds) == 0:
            raise InputError(f"{what} data {spec!r} is empty")
        return ds

    if cfg.test is None and cfg.val is None and hasattr(full, "split_indices"):
        # Time-ordered data (forecasting): the data set splits itself by date, never at random.
        tr, va, te = full.split_indices()
        train, val, test = full.subset(tr), full.subset(va), full.subset(te)
    elif cfg.test is None and cfg.val is None:
        tr, va, te = stratified_split_indices(full.labels, [1 - cfg.val_fraction - cfg.test_fraction,
                                                            cfg.val_fraction, cfg.test_fraction], cfg.seed)
        train, val, test = full.subset(tr), full.subset(va), full.subset(te)
    elif cfg.val is None:
        test = load_other(cfg.test, "test")
        train, val = split_off(full, cfg.val_fraction, seed=cfg.seed)
    elif cfg.test is None:
        val = load_other(cfg.val, "val")
        train, test = split_off(full, cfg.test_fraction, seed=cfg.seed)
    else:
        train, val, test = full, load_other(cfg.val, "val"), load_other(cfg.test, "test")
    for name, ds in (("train", train), ("val", val), ("test", test)):
        if len(ds) == 0:
            raise InputError(f"{cfg.train}: the {name} split is empty (too few rows for the split fractions)")
    train = train.fit()
    return Splits(train, val.fitted_like(train), test.fitted_like(train))


def teacher_from_recipe(cfg: TeacherConfig, splits: Any, *, cache_dir: str | None = None, seed: int = 0) -> Any:
    """Build (and, with ``train = true``, fit) the recipe's teacher on ``splits``."""
    from edge_kd.models.teachers import load_teacher, train_teacher

    if cfg.name:
        options = dict(cfg.options)
        if cfg.name == "lightgbm":
            options.setdefault("seed", seed)
        teacher = load_teacher(cfg.name, train=splits.train, options=options)
        if cfg.train:
            f = cfg.finetune
            settings: Any
            if teacher.name == "lightgbm":
                settings = None  # the trees' options are [teacher].options; early stopping on the val split
            elif teacher.name in ("tabular-mlp", "sasrec"):
                settings = {"epochs": f.epochs, "lr": f.lr, "batch_size": f.batch_size,
                            "weight_decay": f.weight_decay, "seed": seed}
            else:
                from edge_kd.models.finetune import FinetuneSettings

                settings = FinetuneSettings(epochs=f.epochs, lr=f.lr, weight_decay=f.weight_decay,
                                            batch_size=f.batch_size, seed=seed, unfreeze_last=f.unfreeze_last,
                                            unfreeze_epochs=f.unfreeze_epochs, unfreeze_lr=f.unfreeze_lr,
                                            unfreeze_batch_size=f.unfreeze_batch_size,
                                            label_smoothing=f.label_smoothing, warmup_epochs=f.warmup_epochs,
                                            augment=f.augment)
            teacher = train_teacher(teacher, splits.train, splits.val, splits.test, settings=settings,
                                    cache_dir=cache_dir)
        return teacher
    if cfg.path:
        return load_teacher(cfg.path)
    return load_teacher(cfg.factory, weights=cfg.weights, inputs=list(cfg.inputs), kwargs=cfg.kwargs)
