"""How much a release may regress against the last release (``--baseline``) before the gate fails.

Each tolerance is either relative ("5%": a fraction of the baseline's figure) or absolute in the
figure's own unit ("64KiB" for size, "2ms" for latency, "0.5pt" for the task metric). Parsed once,
here, so the checks compare plain numbers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Mapping

from edge_kd.errors import InputError
from edge_kd.units import format_bytes, parse_accuracy_drop, parse_bytes, parse_ms

_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*%")


@dataclass(frozen=True)
class Tolerance:
    """A regression allowance: ``relative`` (fraction of the baseline) or ``absolute`` (unit of the figure)."""

    kind: Literal["relative", "absolute"]
    value: float
    text: str

    def allowed(self, baseline: float) -> float:
        """How much the figure may move against the baseline, in the figure's unit."""
        return baseline * self.value if self.kind == "relative" else self.value

    def __str__(self) -> str:
        return self.text


def _relative(text: str) -> Tolerance | None:
    m = _PERCENT.fullmatch(text.strip())
    return Tolerance("relative", float(m.group(1)) / 100.0, text.strip()) if m else None


def parse_size_tolerance(value: object) -> Tolerance:
    """"5%" (of the baseline bundle) or a size such as "64KiB".

    >>> parse_size_tolerance("5%").value
    0.05
    """
    text = str(value)
    rel = _relative(text)
    if rel is not None:
        return rel
    try:
        n = parse_bytes(value if isinstance(value, int) else text)
    except ValueError:
        raise ValueError(f"expected a size growth such as '5%' or '64KiB', got {value!r}") from None
    return Tolerance("absolute", float(n), format_bytes(n))


def parse_latency_tolerance(value: object) -> Tolerance:
    """"10%" (of the baseline p90) or a duration such as "2ms".

    >>> parse_latency_tolerance("2ms").value
    2.0
    """
    text = str(value)
    rel = _relative(text)
    if rel is not None:
        return rel
    try:
        ms = parse_ms(text)
    except ValueError:
        raise ValueError(f"expected a latency growth such as '10%' or '2ms', got {value!r}") from None
    return Tolerance("absolute", ms, f"{ms:g}ms")


def parse_metric_tolerance(value: object) -> Tolerance:
    """"0.5pt" (absolute points of the task metric) or "1%" (relative to the baseline's metric).

    >>> parse_metric_tolerance("0.5pt").value
    0.005
    """
    drop = parse_accuracy_drop(str(value))
    return Tolerance("absolute" if drop.kind == "absolute" else "relative", drop.value, str(value).strip())


@dataclass(frozen=True)
class Tolerances:
    """Allowed regressions against a baseline build. Defaults: 5% size, 0.5pt metric, 10% p90 latency.

    >>> Tolerances.from_mapping({"max_size_growth": "64KiB"}).max_size_growth.kind
    'absolute'
    """

    max_size_growth: Tolerance = parse_size_tolerance("5%")
    max_metric_loss: Tolerance = parse_metric_tolerance("0.5pt")
    max_latency_growth: Tolerance = parse_latency_tolerance("10%")

    _PARSERS = {"max_size_growth": parse_size_tolerance, "max_metric_loss": parse_metric_tolerance,
                "max_latency_growth": parse_latency_tolerance}

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], *, source: str = "tolerances") -> "Tolerances":
        kwargs = {}
        for key, raw in values.items():
            if raw is None:
                continue
            parser = cls._PARSERS.get(key)
            if parser is None:
                raise InputError(f"{source}: unknown tolerance {key!r}; known: {', '.join(cls._PARSERS)}")
            if isinstance(raw, Tolerance):
                kwargs[key] = raw
                continue
            try:
                kwargs[key] = parser(raw)
            except ValueError as exc:
                raise InputError(f"{source}: {key.replace('_', '-')}: {exc}") from None
        return cls(**kwargs)

    def to_dict(self) -> dict[str, str]:
        return {"max_size_growth": self.max_size_growth.text, "max_metric_loss": self.max_metric_loss.text,
                "max_latency_growth": self.max_latency_growth.text}
