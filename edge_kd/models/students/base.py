"""Student families: a network with one size knob, searched by the budget-driven sizing.

A family knows how to build a student for a knob value, which knob values are allowed (ascending,
so parameter count grows with the index and a binary search is valid), what inputs the student
takes, and how to describe itself as a :class:`~edge_kd.models.spec.ModelSpec` so the trained
student reloads without unpickling code.

Users bring their own student with ``module:factory`` + the knob's keyword name + a range:

    family = StudentFamily.custom("my_pkg.models:tiny_ranker", knob="hidden", low=16, high=512, step=16,
                                  inputs=("features:1x40:float32",), kwargs={"num_classes": 2})
    model = family.build(64)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from edge_kd.errors import InputError
from edge_kd.models.spec import InputSpec, ModelSpec, import_object
from edge_kd.registry import Registry

#: name -> constructor(**options) -> StudentFamily
FAMILIES: Registry[Callable[..., "StudentFamily"]] = Registry("student family")


def knob_values(low: float, high: float, step: float) -> tuple[float, ...]:
    """Ascending values ``low, low+step, ..., <= high`` (ints stay ints)."""
    if step <= 0 or high < low:
        raise InputError(f"knob range: need low <= high and step > 0, got low={low} high={high} step={step}")
    values = []
    n = 0
    while True:
        v = low + n * step
        if v > high + 1e-9:
            break
        values.append(int(round(v)) if all(float(x).is_integer() for x in (low, step)) else round(v, 6))
        n += 1
    return tuple(values)


@dataclass(frozen=True)
class StudentFamily:
    """A student architecture with one searched knob.

    ``factory`` is an importable ``module:function`` taking ``**kwargs`` plus ``knob=value``;
    ``inputs`` are the model's inputs for a given knob value (they may depend on it, e.g. the
    vocabulary bound of token ids or an image resolution).
    """

    name: str
    factory: str
    knob: str
    values: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_fn: Callable[[Any, dict[str, Any]], tuple[InputSpec, ...]] | None = None
    static_inputs: tuple[InputSpec, ...] = ()

    def __post_init__(self) -> None:
        if not self.values:
            raise InputError(f"student family {self.name!r}: knob {self.knob!r} has no values")
        if list(self.values) != sorted(self.values):
            raise InputError(f"student family {self.name!r}: knob values must be ascending")

    def kwargs_for(self, value: Any) -> dict[str, Any]:
        return {**self.kwargs, self.knob: value}

    def inputs_for(self, value: Any) -> tuple[InputSpec, ...]:
        if self.input_fn is not None:
            return self.input_fn(value, self.kwargs_for(value))
        return self.static_inputs

    def spec(self, value: Any, weights: str | None = None) -> ModelSpec:
        """The architecture as data (reloads with ``ModelSpec.build()``)."""
        return ModelSpec(self.factory, self.inputs_for(value), self.kwargs_for(value), weights)

    def build(self, value: Any):
        """A freshly initialised student (deterministic for a given value)."""
        import torch

        factory = import_object(self.factory)
        torch.manual_seed(0)
        try:
            model = factory(**self.kwargs_for(value))
        except TypeError as exc:
            raise InputError(f"student {self.factory}(**{self.kwargs_for(value)}) failed: {exc}") from None
        return model

    def example_inputs(self, value: Any, seed: int = 0) -> tuple:
        return self.spec(value).example_inputs(seed=seed)

    def num_params(self, value: Any) -> int:
        """Parameter count, built on the meta device (no memory, no init cost for big tables)."""
        import torch

        factory = import_object(self.factory)
        with torch.device("meta"):
            model = factory(**self.kwargs_for(value))
        return sum(p.numel() for p in model.parameters())

    @classmethod
    def custom(cls, factory: str, *, knob: str, low: float, high: float, step: float = 1,
               inputs: Sequence[str] | Sequence[InputSpec], kwargs: dict[str, Any] | None = None,
               name: str = "custom") -> "StudentFamily":
        """A user's own student class with a declared knob (see the module doc)."""
        specs = tuple(i if isinstance(i, InputSpec) else InputSpec.parse(i) for i in inputs)
        if not specs:
            raise InputError(f"custom student {factory!r}: declare its inputs, e.g. features:1x40:float32")
        import_object(factory)  # fail now, naming the reference, rather than mid-search
        return cls(name, factory, knob, knob_values(low, high, step), dict(kwargs or {}), static_inputs=specs)


def make_family(name: str, **options: Any) -> StudentFamily:
    """A registered family by name (``text_hashed``, ``mobilenet``, ``tabular_mlp``) with options."""
    import edge_kd.models.students.forecast  # noqa: F401  (register the families)
    import edge_kd.models.students.image  # noqa: F401
    import edge_kd.models.students.items  # noqa: F401
    import edge_kd.models.students.tabular  # noqa: F401
    import edge_kd.models.students.text  # noqa: F401

    ctor = FAMILIES.get(name)
    try:
        return ctor(**options)
    except TypeError as exc:
        raise InputError(f"student family {name!r}: bad options {sorted(options)}: {exc}") from None
