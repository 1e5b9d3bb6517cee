"""A gradient-boosted tree teacher (LightGBM) for demand forecasting.

Why trees: on tabular lag/price/calendar features, gradient-boosted trees are what forecasting teams
ship (the M5 competition's leading entries were LightGBM), and they train in seconds on a CPU. The
trees predict the week's quantity as a multiple of the product's recent ``level`` (the data set's
second input) with the L1 objective weighted by that level, which is the same as minimising the
absolute error in units, the numerator of WAPE::

    teacher = build_teacher("lightgbm", splits.train, num_leaves=31)
    teacher = train_teacher(teacher, splits.train, splits.val, splits.test)
    teacher.predict(splits.test)            # float32 [N, 1] quantities

The trees have **no runtime artifact**: ExecuTorch and LiteRT have no tree-ensemble operator and
this project exports none to ONNX, so the teacher's metrics are measured in Python (LightGBM) and
its latency in the phone runtimes is not measured (reports show "n/a"). ``lightgbm`` is imported
only when a tree teacher is built.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edge_kd.errors import InputError

#: Why a tree teacher has no artifact in any runtime (recorded in build.json and shown in reports).
NO_RUNTIME_ARTIFACT = ("gradient-boosted trees (LightGBM) have no runtime artifact here: ExecuTorch and LiteRT "
                       "have no tree-ensemble operator and no ONNX export of the trees is made; teacher metrics "
                       "are measured in Python")

DEFAULTS: dict[str, Any] = {"num_leaves": 31, "learning_rate": 0.05, "n_estimators": 2000, "min_child_samples": 50,
                            "subsample": 0.8, "colsample_bytree": 0.8, "early_stopping_rounds": 100,
                            "objective": "l1", "n_jobs": 1}


@dataclass
class TreeTeacher:
    """LightGBM regressor on a ``ForecastDataset``'s raw features, predicting ``level * ratio``.
    Mirrors the parts of :class:`edge_kd.models.teachers.Teacher` the stages use."""

    name: str
    options: dict[str, Any]
    label_names: list[str] = field(default_factory=lambda: ["quantity"])
    task: str = "regression"
    metrics: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    inputs: tuple = ()
    preprocessing: dict[str, Any] = field(default_factory=lambda: {"kind": "raw-features"})
    trainable: bool = True
    seed: int = 0
    #: Why there is no artifact to export to a runtime (the bench stage reads this).
    no_runtime_artifact: str = NO_RUNTIME_ARTIFACT

    def prepare(self, ds: Any) -> Any:
        _check_forecast(ds)
        return ds

    def predict(self, ds: Any, indices: Sequence[int] | np.ndarray | None = None, *, batch_size: int = 0) -> np.ndarray:
        """Forecast quantities, float32 [N, 1]."""
        _check_forecast(ds)
        if self.model is None:
            raise InputError(f"teacher {self.name}: not trained")
        from edge_kd.data.base import as_indices

        idx = as_indices(indices, len(ds))
        ratio = self.model.predict(ds.raw_x[idx], num_iteration=self.model.best_iteration or None)
        return (np.asarray(ratio, dtype=np.float64) * ds.level[idx]).astype(np.float32).reshape(-1, 1)

    def fingerprint(self) -> str:
        """sha256 of the fitted trees (LightGBM's text dump)."""
        if self.model is None:
            return hashlib.sha256(b"untrained" + repr(sorted(self.options.items())).encode()).hexdigest()
        return hashlib.sha256(self.model.model_to_string().encode()).hexdigest()

    def num_trees(self) -> int:
        return int(self.model.num_trees()) if self.model is not None else 0

    def fit(self, train: Any, val: Any, test: Any | None = None) -> "TreeTeacher":
        """Train with early stopping on the validation split's absolute error; metrics (WAPE, MAE)
        of val and test land in ``metrics``."""
        import lightgbm as lgb

        from edge_kd.metrics import regression_metrics

        for ds in (train, val):
            _check_forecast(ds)
        opts = {**DEFAULTS, **self.options}
        stop = int(opts.pop("early_stopping_rounds"))
        rounds = int(opts.pop("n_estimators"))
        params = {**opts, "seed": self.seed, "deterministic": True, "verbose": -1,
                  "bagging_freq": 1 if opts.get("subsample", 1.0) < 1.0 else 0}
        params["bagging_fraction"] = params.pop("subsample")
        params["feature_fraction"] = params.pop("colsample_bytree")
        params["min_data_in_leaf"] = params.pop("min_child_samples")
        params["num_threads"] = params.pop("n_jobs")
        # L1 on the ratio weighted by the level = absolute error in units (see the module doc).
        dtrain = lgb.Dataset(train.raw_x, train.labels / train.level, weight=train.level, free_raw_data=False)
        dval = lgb.Dataset(val.raw_x, val.labels / val.level, weight=val.level, reference=dtrain)
        try:
            self.model = lgb.train(params, dtrain, num_boost_round=rounds, valid_sets=[dval],
                                   callbacks=[lgb.early_stopping(stop, verbose=False)])
        except lgb.basic.LightGBMError as exc:
            raise InputError(f"teacher {self.name}: LightGBM rejected the options {self.options}: {exc}") from None
        self.metrics.update({f"val_{k}": v for k, v in regression_metrics(self.predict(val), val.labels).items()})
        if test is not None:
            self.metrics.update({f"test_{k}": v for k, v in regression_metrics(self.predict(test), test.labels).items()})
        self.metrics["trees"] = self.num_trees()
        return self


def _check_forecast(ds: Any) -> None:
    if not hasattr(ds, "raw_x") or getattr(ds, "task", None) != "regression":
        raise InputError(f"{getattr(ds, 'source', ds)}: the lightgbm teacher reads forecasting data "
                         f"(transactions:...?task=forecast), got {type(ds).__name__}")


def build_tree_teacher(train: Any, *, seed: int = 0, **options: Any) -> TreeTeacher:
    _check_forecast(train)
    unknown = [k for k in options if k not in DEFAULTS]
    if unknown:
        raise InputError(f"teacher 'lightgbm': unknown option(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    return TreeTeacher("lightgbm", dict(options), seed=seed)
