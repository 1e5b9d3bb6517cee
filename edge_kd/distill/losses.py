"""Knowledge-distillation losses, registered by name (``LOSSES.get("hinton")``).

Every loss is an ``nn.Module`` called as ``loss(student_logits, teacher_logits, labels)`` and
returns a scalar. ``alpha`` weighs the soft (teacher) term against the hard-label term:
``alpha * soft + (1 - alpha) * hard``; ``alpha=1`` is pure distillation, ``alpha=0`` is plain
training on labels. Losses may own parameters (the logit-regression scale, hint projectors); the
trainer optimises them with the student.

    loss_fn = build_loss("hinton", temperature=4.0, alpha=0.9)
    loss = loss_fn(student(x), teacher_logits, y)

FitNets hints (``HintLoss``) compare intermediate features captured with :class:`FeatureCapture`.
"""
from __future__ import annotations

import difflib
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edge_kd.distill import KD_ALPHA, KD_TEMPERATURE
from edge_kd.errors import InputError
from edge_kd.registry import Registry

LOSSES: Registry[type[nn.Module]] = Registry("KD loss")


def _check(student: torch.Tensor, teacher: torch.Tensor) -> None:
    if student.shape != teacher.shape:
        raise InputError(f"teacher outputs have shape {tuple(teacher.shape)} but the student's are "
                         f"{tuple(student.shape)}: teacher and student must predict the same classes")


def _check_alpha(alpha: float) -> float:
    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"distillation alpha must be in [0, 1], got {alpha}")
    return float(alpha)


@LOSSES.register("hinton")
class HintonLoss(nn.Module):
    """Hinton et al. (2015): ``T^2 * KL(softmax(t/T) || softmax(s/T))`` (batch mean), mixed with
    cross-entropy on the hard labels: ``alpha * soft + (1 - alpha) * CE(s, y)``. The ``T^2`` keeps
    the soft gradients' scale independent of the temperature."""

    def __init__(self, temperature: float = KD_TEMPERATURE, alpha: float = KD_ALPHA):
        super().__init__()
        if temperature <= 0:
            raise InputError(f"hinton loss: temperature must be > 0, got {temperature}")
        self.temperature, self.alpha = float(temperature), _check_alpha(alpha)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        _check(student, teacher)
        t = self.temperature
        soft = F.kl_div(F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1),
                        reduction="batchmean", log_target=True) * (t * t)
        if self.alpha >= 1.0 or labels is None:
            return soft
        return self.alpha * soft + (1.0 - self.alpha) * F.cross_entropy(student, labels)


@LOSSES.register("mse")
class MSELoss(nn.Module):
    """Plain MSE between student and teacher logits (Ba & Caruana), optionally mixed with CE."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = _check_alpha(alpha)

    def soft(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(student, teacher)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        _check(student, teacher)
        soft = self.soft(student, teacher)
        if self.alpha >= 1.0 or labels is None:
            return soft
        return self.alpha * soft + (1.0 - self.alpha) * F.cross_entropy(student, labels)


@LOSSES.register("logit_regression")
class LogitRegressionLoss(MSELoss):
    """MSE between the teacher's logits and ``theta * student`` with a learned scalar ``theta``
    (init 1): the student matches the teacher's logits up to a scale it cannot afford to learn."""

    def __init__(self, alpha: float = 1.0, init_scale: float = 1.0):
        super().__init__(alpha)
        self.theta = nn.Parameter(torch.tensor(float(init_scale)))

    def soft(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.theta * student, teacher)


def _binary_logit(x: torch.Tensor) -> torch.Tensor:
    """One logit per row from ``[N]``, ``[N, 1]`` or two-class ``[N, 2]`` outputs."""
    if x.dim() == 2 and x.shape[1] == 2:
        return x[:, 1] - x[:, 0]
    if x.dim() == 2 and x.shape[1] == 1:
        return x[:, 0]
    if x.dim() == 1:
        return x
    raise InputError(f"bce_soft: expected binary outputs of shape [N], [N, 1] or [N, 2], got {tuple(x.shape)}")


@LOSSES.register("bce_soft")
class SoftBCELoss(nn.Module):
    """Binary / CTR distillation: BCE of the student's logit against
    ``alpha * sigmoid(teacher / T) + (1 - alpha) * click``. Teacher outputs are logits."""

    def __init__(self, alpha: float = 0.5, temperature: float = 1.0):
        super().__init__()
        self.alpha, self.temperature = _check_alpha(alpha), float(temperature)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        s, t = _binary_logit(student), _binary_logit(teacher)
        if s.shape != t.shape:
            raise InputError(f"bce_soft: teacher outputs {tuple(teacher.shape)} do not match student {tuple(student.shape)}")
        target = torch.sigmoid(t / self.temperature)
        if labels is not None and self.alpha < 1.0:
            target = self.alpha * target + (1.0 - self.alpha) * labels.to(target.dtype).reshape(target.shape)
        return F.binary_cross_entropy_with_logits(s / self.temperature, target)


# ---- demand forecasting: regression KD ----------------------------------------------------------
@LOSSES.register("regression_kd")
class RegressionKDLoss(nn.Module):
    """Regression distillation: Huber (smooth L1) distance of the student's forecast to
    ``alpha * teacher + (1 - alpha) * label``, in the label's unit. A small ``delta`` (default 1 unit)
    makes it absolute error for all but tiny misses, which is what WAPE scores; ``alpha=0`` trains on
    the raw targets (the baseline a distilled student is compared with)."""

    def __init__(self, alpha: float = 0.5, delta: float = 1.0):
        super().__init__()
        if delta <= 0:
            raise InputError(f"regression_kd loss: delta must be > 0, got {delta}")
        self.alpha, self.delta = _check_alpha(alpha), float(delta)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor | None, labels: torch.Tensor | None = None) -> torch.Tensor:
        s = student.reshape(student.shape[0], -1)[:, 0]
        if self.alpha > 0 and teacher is None:
            raise InputError("regression_kd with alpha > 0 needs the teacher's forecasts")
        if self.alpha < 1.0 and labels is None:
            raise InputError("regression_kd with alpha < 1 needs the labels")
        target = 0.0
        if self.alpha > 0:
            t = teacher.reshape(teacher.shape[0], -1)[:, 0]
            if t.shape != s.shape:
                raise InputError(f"regression_kd: teacher outputs {tuple(teacher.shape)} do not match the "
                                 f"student's {tuple(student.shape)}")
            target = self.alpha * t.to(s.dtype)
        if self.alpha < 1.0:
            target = target + (1.0 - self.alpha) * labels.to(s.dtype).reshape(s.shape)
        return F.smooth_l1_loss(s, target, beta=self.delta)


@LOSSES.register("ce")
class HardLabelLoss(nn.Module):
    """Training on labels only (the baseline every distilled student is compared with)."""

    def forward(self, student: torch.Tensor, teacher: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            raise InputError("hard-label training needs labels")
        if student.dim() == 2 and student.shape[1] == 1 or student.dim() == 1:
            return F.binary_cross_entropy_with_logits(student.reshape(-1), labels.to(student.dtype).reshape(-1))
        return F.cross_entropy(student, labels)


# ---- next-purchase ranking (task "ranking": labels are target sets [N, K], -1 padded) ---------------
def next_items_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multi-target softmax cross-entropy: ``-mean_{i in targets} log softmax(scores)_i`` per row, batch
    mean (the softmax over every item, with the next basket's items as a uniform target distribution)."""
    if targets.dim() != 2:
        raise InputError(f"next-purchase targets must be [N, K] item sets, got shape {tuple(targets.shape)}")
    valid = targets >= 0
    logp = F.log_softmax(scores.float(), dim=-1).gather(1, targets.clamp(min=0).long())
    per_row = -(logp * valid).sum(1) / valid.sum(1).clamp(min=1)
    return per_row.mean()


@LOSSES.register("listwise")
class ListwiseKDLoss(nn.Module):
    """Listwise distillation over the whole catalog: ``alpha * T^2 * KL(softmax(t/T) || softmax(s/T))``
    (the teacher's score distribution over every item) ``+ (1 - alpha) *`` :func:`next_items_loss` on
    the true next items."""

    def __init__(self, temperature: float = 1.0, alpha: float = 0.5):
        super().__init__()
        if temperature <= 0:
            raise InputError(f"listwise loss: temperature must be > 0, got {temperature}")
        self.temperature, self.alpha = float(temperature), _check_alpha(alpha)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        t = self.temperature
        if self.alpha > 0.0:
            _check(student, teacher)
            soft = F.kl_div(F.log_softmax(student / t, dim=-1), F.log_softmax(teacher.float() / t, dim=-1),
                            reduction="batchmean", log_target=True) * (t * t)
        else:
            soft = student.new_zeros(())
        if self.alpha >= 1.0 or labels is None:
            return soft
        return self.alpha * soft + (1.0 - self.alpha) * next_items_loss(student, labels)


@LOSSES.register("next_items")
class NextItemsLoss(HardLabelLoss):
    """Training on the true next items only (:func:`next_items_loss`): the baseline a distilled
    next-purchase student is compared with."""

    def forward(self, student: torch.Tensor, teacher: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            raise InputError("next_items training needs the next items")
        return next_items_loss(student, labels)


def build_loss(name: str, **options: Any) -> nn.Module:
    """A registered loss by name with its options; bad options are an InputError naming the loss."""
    cls = LOSSES.get(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise InputError(f"KD loss {name!r}: bad options {sorted(options)}: {exc}") from None


# ---- FitNets hints ------------------------------------------------------------------------------
class HintLoss(nn.Module):
    """FitNets (Romero et al.): MSE between a learned projection of a student feature and a teacher
    feature. The projector is a 1x1 conv for ``[N, C, H, W]`` features and a linear layer otherwise;
    when spatial sizes differ the projected student map is average-pooled to the teacher's size."""

    def __init__(self, student_channels: int, teacher_channels: int, spatial: bool):
        super().__init__()
        self.spatial = spatial
        self.proj = (nn.Conv2d(student_channels, teacher_channels, 1, bias=False) if spatial
                     else nn.Linear(student_channels, teacher_channels, bias=False))

    @classmethod
    def for_features(cls, student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> "HintLoss":
        spatial = student_feat.dim() == 4
        if spatial != (teacher_feat.dim() == 4):
            raise InputError(f"hint: student feature {tuple(student_feat.shape)} and teacher feature "
                             f"{tuple(teacher_feat.shape)} must both be maps [N,C,H,W] or both vectors")
        dim = 1 if spatial else -1
        return cls(student_feat.shape[dim], teacher_feat.shape[dim], spatial)

    def forward(self, student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
        projected = self.proj(student_feat)
        if self.spatial and projected.shape[-2:] != teacher_feat.shape[-2:]:
            projected = F.adaptive_avg_pool2d(projected, teacher_feat.shape[-2:])
        return F.mse_loss(projected, teacher_feat.to(projected.dtype))


class FeatureCapture:
    """Capture named modules' outputs with forward hooks.

    >>> with FeatureCapture(model, ["features.3"]) as feats:      # doctest: +SKIP
    ...     model(x); feats["features.3"].shape
    """

    def __init__(self, model: nn.Module, layer_names: Sequence[str], *, role: str = "student"):
        modules = dict(model.named_modules())
        self.features: dict[str, torch.Tensor] = {}
        self._handles = []
        for name in layer_names:
            if name not in modules:
                close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.4)
                hint = f"; close names: {', '.join(close)}" if close else \
                    f"; layers include: {', '.join(list(n for n in modules if n)[:8])}"
                raise InputError(f"hint layer {name!r} not found in the {role} model{hint}")
            self._handles.append(modules[name].register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self.features[name] = output[0] if isinstance(output, (tuple, list)) else output

        return hook

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> dict[str, torch.Tensor]:
        return self.features

    def __exit__(self, *exc: Any) -> None:
        self.close()
