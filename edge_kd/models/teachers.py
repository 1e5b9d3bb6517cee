"""The teacher zoo: build, fine-tune, save and reload teachers by name, or take a user's model.

A ``Teacher`` bundles what the other stages need from a teacher:

* ``model``: the ``nn.Module`` (eval mode), ``forward(*inputs) -> logits``;
* ``inputs``: fixed-shape ``InputSpec``s (batch 1) for exporting it to the target runtime;
* ``prepare(ds)``: the data set seen as this model's inputs (tokenised text, images scaled the way
  the model was trained); ``predict(ds)`` gives logits over a data set;
* ``spec``: a ``ModelSpec`` that rebuilds it without unpickling code (after ``save``).

Registered names (``TEACHERS``): ``minilm-l6`` (text), ``efficientnet-lite0`` and ``resnet18``
(images), ``tabular-mlp`` (tabular/CTR). Each builder takes the training data set (class count,
feature layout) and options::

    teacher = build_teacher("minilm-l6", splits.train, max_len=64)
    teacher = train_teacher(teacher, splits)               # head fine-tune / MLP training
    teacher.save("build/teacher")                           # safetensors + ModelSpec JSON
    teacher = load_teacher("build/teacher/teacher.json")   # or "my_pkg.models:build" + weights
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edge_kd.data.base import Dataset, as_indices
from edge_kd.errors import InputError
from edge_kd.models.spec import InputSpec, ModelSpec
from edge_kd.registry import Registry

TEACHERS: Registry[Callable[..., "Teacher"]] = Registry("teacher")
TEACHER_FILE = "teacher.json"
WEIGHTS_FILE = "teacher.safetensors"
META_FILE = "teacher_meta.json"


@dataclass
class Teacher:
    """A teacher model with its inputs, data preparation and provenance (see the module doc)."""

    name: str
    model: Any
    inputs: tuple[InputSpec, ...]
    spec: ModelSpec
    preprocessing: dict[str, Any] = field(default_factory=dict)
    label_names: list[str] = field(default_factory=list)
    task: str = "classification"
    metrics: dict[str, Any] = field(default_factory=dict)
    trainable: bool = True

    def prepare(self, ds: Dataset) -> Dataset:
        """``ds`` as this model's inputs (see ``preprocessing``)."""
        return prepare_dataset(ds, self.preprocessing, self.inputs)

    def predict(self, ds: Dataset, indices: Sequence[int] | np.ndarray | None = None, *,
                batch_size: int = 64) -> np.ndarray:
        """Logits float32 [N, num_classes] over ``ds`` (prepared here; pass the raw data set)."""
        import torch

        prepared = self.prepare(ds)
        idx = as_indices(indices, len(prepared))
        from edge_kd.console import progress

        outs = []
        self.model.eval()
        with torch.no_grad(), progress(f"teacher {self.name}: outputs", total=len(idx), unit=" rows") as bar:
            for start in range(0, len(idx), batch_size):
                arrays = prepared.inputs(idx[start:start + batch_size])
                outs.append(self.model(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)).float().numpy())
                bar.update(len(outs[-1]))
        return np.concatenate(outs) if outs else np.zeros((0, len(self.label_names)), np.float32)

    def example_inputs(self, batch: int | None = None) -> tuple:
        return tuple(s.example(batch, i) for i, s in enumerate(self.inputs))

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``teacher.safetensors``, ``teacher.json`` (ModelSpec) and ``teacher_meta.json``;
        returns the ModelSpec path. Files are written atomically."""
        from edge_kd.models.spec import save_state_dict
        from edge_kd.pipeline.atomic import atomic_write_json

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        save_state_dict(self.model, out / WEIGHTS_FILE)
        spec = replace(self.spec, weights=WEIGHTS_FILE)
        atomic_write_json(out / META_FILE, {"name": self.name, "preprocessing": self.preprocessing,
                                            "label_names": self.label_names, "task": self.task,
                                            "metrics": self.metrics})
        path = spec.save(out / TEACHER_FILE)
        self.spec = replace(self.spec, weights=str(out / WEIGHTS_FILE))
        return path


def prepare_dataset(ds: Dataset, preprocessing: dict[str, Any], inputs: Sequence[InputSpec]) -> Dataset:
    """Apply a teacher's declared preprocessing to a data set (see ``Teacher.preprocessing``)."""
    from edge_kd.data.images import ImageDataset
    from edge_kd.data.text import TextDataset, TokenizedTextDataset

    kind = preprocessing.get("kind")
    if kind == "tokenizer":
        if isinstance(ds, TokenizedTextDataset):
            if ds.tokenizer_name != preprocessing["name"]:
                ds = ds.base
            else:
                return ds
        if not isinstance(ds, TextDataset):
            raise InputError(f"{ds.source}: this teacher reads text; the data set is {type(ds).__name__}")
        max_len = int(preprocessing["max_len"])
        if preprocessing["tokenizer"] == "minilm":
            from edge_kd.models.minilm import tokenize

            return ds.tokenized(lambda texts: tokenize(texts, max_len), name=preprocessing["name"])
        raise InputError(f"unknown tokenizer {preprocessing['tokenizer']!r}")
    if kind == "image":
        if not isinstance(ds, ImageDataset):
            raise InputError(f"{ds.source}: this teacher reads images; the data set is {type(ds).__name__}")
        if ds.size != preprocessing["size"]:
            raise InputError(f"{ds.source}: images are loaded at {ds.size}x{ds.size}, the teacher needs "
                             f"{preprocessing['size']}x{preprocessing['size']} (set size={preprocessing['size']})")
        return ds.with_preprocessing(preprocessing["scaling"])
    # Arrays as they are (tabular features, npz inputs): check the count of inputs at least.
    n = len(ds.input_names)
    if n != len(inputs):
        from edge_kd.data.text import TextDataset as _T

        hint = " (raw text needs a tokenizer: use a registry teacher or pre-tokenised npz data)" if isinstance(ds, _T) else ""
        raise InputError(f"{ds.source}: the data set yields {n} input(s) ({', '.join(ds.input_names)}), "
                         f"the teacher takes {len(inputs)} ({', '.join(i.name for i in inputs)}){hint}")
    return ds


# ---------------------------------------------------------------------------------------------
# Builders


def _need_classes(ds: Dataset) -> int:
    if ds.num_classes < 2:
        raise InputError(f"{ds.source}: need at least two classes to build a teacher")
    return ds.num_classes


@TEACHERS.register("minilm-l6")
def _minilm(train: Dataset, *, max_len: int = 64, normalize: bool = True, pretrained: bool = True) -> Teacher:
    from edge_kd.models.minilm import VOCAB_SIZE, minilm_classifier

    n = _need_classes(train)
    model = minilm_classifier(n, pretrained=pretrained, normalize=normalize, max_len=max_len)
    kwargs = {"num_classes": n, "pretrained": False, "normalize": normalize, "max_len": max_len}
    inputs = (InputSpec("input_ids", (1, max_len), "int64", 0, VOCAB_SIZE),
              InputSpec("attention_mask", (1, max_len), "int64", 1, 2))
    return Teacher("minilm-l6", model, inputs, ModelSpec("edge_kd.models.minilm:minilm_classifier", inputs, kwargs),
                   {"kind": "tokenizer", "tokenizer": "minilm", "max_len": max_len, "name": f"minilm-l6-{max_len}"},
                   list(train.label_names), train.task)


def _image_size(train: Dataset, image_size: int | None) -> int:
    return int(image_size or getattr(train, "size", 224))


@TEACHERS.register("efficientnet-lite0")
def _effnet(train: Dataset, *, image_size: int | None = None, pretrained: bool = True, dropout: float = 0.2) -> Teacher:
    from edge_kd.models.efficientnet_lite import efficientnet_lite0

    n = _need_classes(train)
    size = _image_size(train, image_size)
    model = efficientnet_lite0(n, pretrained=pretrained, image_size=size, dropout=dropout)
    inputs = (InputSpec("image", (1, 3, size, size), "float32", -1.0, 1.0),)
    kwargs = {"num_classes": n, "pretrained": False, "image_size": size, "dropout": dropout}
    return Teacher("efficientnet-lite0", model, inputs,
                   ModelSpec("edge_kd.models.efficientnet_lite:efficientnet_lite0", inputs, kwargs),
                   {"kind": "image", "scaling": "tf", "size": size}, list(train.label_names), train.task)


@TEACHERS.register("resnet18")
def _resnet(train: Dataset, *, image_size: int | None = None, weights: str | None = None) -> Teacher:
    from edge_kd.models.resnet import resnet18
    from edge_kd.models.spec import load_state_dict

    n = _need_classes(train)
    size = _image_size(train, image_size)
    model = resnet18(n)
    if weights:
        # torchvision-layout weights; a 1000-class head is dropped when the task differs.
        state = load_state_dict(weights)
        if state.get("fc.weight") is not None and state["fc.weight"].shape[0] != n:
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("fc.")]:
            raise InputError(f"{weights}: not ResNet-18 weights in torchvision layout "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    inputs = (InputSpec("image", (1, 3, size, size), "float32", -2.2, 2.7),)
    return Teacher("resnet18", model.eval(), inputs, ModelSpec("edge_kd.models.resnet:resnet18", inputs, {"num_classes": n}),
                   {"kind": "image", "scaling": "imagenet", "size": size}, list(train.label_names), train.task)


@TEACHERS.register("tabular-mlp")
def _tabular(train: Dataset, *, hidden: Sequence[int] = (256, 128), dropout: float = 0.1) -> Teacher:
    from edge_kd.data.tabular import TabularDataset
    from edge_kd.models.tabular import tabular_mlp

    if not isinstance(train, TabularDataset):
        raise InputError(f"{train.source}: the tabular-mlp teacher needs tabular or ctr data, got {type(train).__name__}")
    n = max(_need_classes(train), 2)
    cards = list(train.cardinalities) if train.categorical_names else []
    model = tabular_mlp(train.num_numeric, cards, n, list(hidden), dropout)
    inputs: list[InputSpec] = []
    if train.num_numeric:
        inputs.append(InputSpec("numeric", (1, train.num_numeric), "float32", -2.0, 2.0))
    if cards:
        inputs.append(InputSpec("categorical", (1, len(cards)), "int64", 0, min(cards)))
    kwargs = {"num_numeric": train.num_numeric, "cardinalities": cards, "num_classes": n,
              "hidden": list(hidden), "dropout": dropout}
    return Teacher("tabular-mlp", model, tuple(inputs), ModelSpec("edge_kd.models.tabular:tabular_mlp", tuple(inputs), kwargs),
                   {"kind": "tabular", "preprocessor": train.preprocessor.to_dict() if train.preprocessor else None},
                   list(train.label_names), train.task)


# ---- demand forecasting: gradient-boosted trees (edge_kd.models.gbm; lightgbm imported when fitted) ----
@TEACHERS.register("lightgbm")
def _lightgbm(train: Dataset, **options: Any) -> Any:
    from edge_kd.models.gbm import build_tree_teacher

    return build_tree_teacher(train, **options)
# ---- end demand forecasting
@TEACHERS.register("sasrec")
def _sasrec(train: Dataset, *, dim: int = 128, layers: int = 2, heads: int = 4, dropout: float = 0.2) -> Teacher:
    """Next-purchase teacher over the item history (``edge_kd.models.recsys``), trained here."""
    from edge_kd.models.recsys import sequence_recommender

    if train.task != "ranking" or not hasattr(train, "history_length"):
        raise InputError(f"{train.source}: the sasrec teacher needs next-purchase data (transactions:...), "
                         f"got {type(train).__name__}")
    kwargs = {"num_items": train.num_classes, "history": train.history_length, "dim": dim, "layers": layers,
              "heads": heads, "dropout": dropout}
    inputs = (InputSpec("history", (1, train.history_length), "int64", 0, train.num_classes + 1),)
    return Teacher("sasrec", sequence_recommender(**kwargs), inputs,
                   ModelSpec("edge_kd.models.recsys:sequence_recommender", inputs, kwargs), {"kind": "arrays"},
                   list(train.label_names), train.task)


def build_teacher(name: str, train: Dataset, **options: Any) -> Teacher:
    """Build a registered teacher for the task of ``train`` (untrained head / MLP).

    >>> teacher = build_teacher("efficientnet-lite0", grocery_train)   # 81-class head, ImageNet trunk
    """
    builder = TEACHERS.get(name)
    try:
        return builder(train, **options)
    except TypeError as exc:
        raise InputError(f"teacher {name!r}: bad option ({exc})") from None


def train_teacher(teacher: Teacher, train: Dataset, val: Dataset | None = None, test: Dataset | None = None, *,
                  settings: Any = None, cache_dir: str | os.PathLike[str] | None = None) -> Teacher:
    """Fit the teacher to the task: a linear head on cached backbone features (``minilm-l6``,
    ``efficientnet-lite0``, ``resnet18``; see ``edge_kd.models.finetune``) or a full MLP training
    (``tabular-mlp``). Metrics (val/test accuracy, ROC-AUC for binary tasks) land in ``teacher.metrics``.

    >>> teacher = train_teacher(build_teacher("minilm-l6", s.train), s.train, s.val, s.test)
    >>> teacher.metrics["test_accuracy"]
    """
    if teacher.name == "lightgbm":
        if val is None:
            raise InputError("the lightgbm teacher needs a validation split (early stopping)")
        return teacher.fit(train, val, test)
    if teacher.name == "sasrec":
        from edge_kd.metrics import ndcg_at_k, recall_at_k
        from edge_kd.models.recsys import train_sequence_teacher

        if val is None:
            raise InputError("the sasrec teacher needs a validation split (transactions:...&split=val)")
        model, metrics = train_sequence_teacher(teacher.model, train, val, **dict(settings or {}))
        if test is not None:
            from edge_kd.models.recsys import _scores

            scores = _scores(model, test.history)
            metrics.update({"test_recall@10": recall_at_k(test.labels, scores, 10),
                            "test_ndcg@10": ndcg_at_k(test.labels, scores, 10)})
        teacher.model = model
        teacher.metrics.update(metrics)
        return teacher
    if teacher.name == "tabular-mlp":
        from edge_kd.models.tabular import evaluate, train_tabular_mlp

        kw = {} if settings is None else dict(settings)
        hidden = teacher.spec.kwargs["hidden"]
        dropout = teacher.spec.kwargs["dropout"]
        if val is None:
            from edge_kd.data.splits import split_off

            train, val = split_off(train, 0.1, seed=int(kw.get("seed", 0)))
        model, metrics = train_tabular_mlp(train, val, hidden=hidden, dropout=dropout, **kw)
        if test is not None:
            metrics.update({f"test_{k}": v for k, v in evaluate(model, test).items()})
        metrics.update({f"val_{k}": v for k, v in evaluate(model, val).items()})
        teacher.model = model
        teacher.metrics.update(metrics)
        return teacher
    from edge_kd.models.finetune import FinetuneSettings, finetune_head

    if settings is None:
        settings = FinetuneSettings()
    elif isinstance(settings, dict):
        settings = FinetuneSettings(**settings)
    prep = teacher.prepare
    model, metrics = finetune_head(teacher.model, prep(train), val=prep(val) if val is not None else None,
                                   test=prep(test) if test is not None else None, settings=settings,
                                   cache_dir=cache_dir)
    teacher.model = model
    teacher.metrics.update(metrics)
    return teacher


def load_teacher(spec: str | os.PathLike[str] | ModelSpec, *, train: Dataset | None = None,
                 weights: str | None = None, inputs: str | Sequence[str] | None = None,
                 kwargs: dict[str, Any] | None = None, options: dict[str, Any] | None = None) -> Teacher:
    """A teacher from (1) a registry name (needs ``train`` for the task), (2) a saved teacher
    (``teacher.json`` or its folder), (3) a ``ModelSpec`` or (4) a user's ``module:factory`` with
    ``weights`` and ``inputs`` (e.g. ``"image:1x3x224x224:float32"``).

    A user's model gets its data set's arrays as they are (no preprocessing is guessed).

    >>> t = load_teacher("minilm-l6", train=train_ds, options={"max_len": 32})
    >>> t = load_teacher("build/teacher")                       # saved by Teacher.save
    >>> t = load_teacher("shop.models:ranker", weights="ranker.safetensors", inputs="features:1x40:float32")
    """
    if isinstance(spec, ModelSpec):
        return Teacher(spec.factory, spec.build(), spec.inputs, spec, {"kind": "arrays"})
    text = str(spec)
    if text in TEACHERS:
        if train is None:
            raise InputError(f"teacher {text!r}: a training data set is needed to size its head")
        return build_teacher(text, train, **(options or {}))
    path = Path(text)
    if path.is_dir() and (path / TEACHER_FILE).is_file():
        path = path / TEACHER_FILE
    if path.suffix == ".json" or path.is_file():
        ms = ModelSpec.load(path)
        meta_path = path.parent / META_FILE
        meta: dict[str, Any] = {}
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except json.JSONDecodeError as exc:
                raise InputError(f"{meta_path}: not valid JSON ({exc})") from None
        return Teacher(meta.get("name", ms.factory), ms.build(), ms.inputs, ms,
                       meta.get("preprocessing", {"kind": "arrays"}), list(meta.get("label_names", [])),
                       meta.get("task", "classification"), dict(meta.get("metrics", {})))
    if ":" in text:
        if not inputs:
            raise InputError(f"teacher {text!r}: give its inputs, e.g. image:1x3x224x224:float32")
        ms = ModelSpec.parse(text, inputs=inputs, weights=weights, kwargs=kwargs)
        return Teacher(text, ms.build(), ms.inputs, ms, {"kind": "arrays"})
    try:
        TEACHERS.get(text)
    except InputError as exc:
        raise InputError(f"{exc} (or give a saved teacher folder, its teacher.json, or module:factory)") from None
    raise AssertionError("unreachable")
