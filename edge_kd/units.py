"""Parsing of the human units used in profiles and recipes: sizes ("1.5MiB"), durations ("12ms"),
and accuracy drops ("1pt" absolute points, "2%" relative). Parsed once, when a config is loaded."""
from __future__ import annotations

import re
from dataclasses import dataclass

_SIZE_UNITS = {
    "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}
_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_NUMBER = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"


def parse_bytes(value: object) -> int:
    """Parse a size: an integer (bytes) or a string such as "1.5MiB", "800KB", "1024 B".

    >>> parse_bytes("1.5MiB")
    1572864
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as '1.5MiB', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size must not be negative, got {value}")
        return value
    if isinstance(value, str):
        m = re.fullmatch(_NUMBER + r"\s*([a-zA-Z]+)", value.strip())
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(round(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]))
        if value.strip().startswith("-"):
            raise ValueError(f"a size must not be negative, got {value!r}")
    raise ValueError(f"expected a size such as '1.5MiB', '800KB' or a byte count, got {value!r}")


def parse_ms(value: object) -> float:
    """Parse a duration into milliseconds: "12ms", "0.5s", "800us" (a bare number is not accepted,
    so that nobody has to guess the unit).

    >>> parse_ms("0.5s")
    500.0
    """
    if isinstance(value, str):
        m = re.fullmatch(_NUMBER + r"\s*(us|ms|s)", value.strip())
        if m:
            return float(m.group(1)) * _TIME_UNITS[m.group(2)]
        if value.strip().startswith("-"):
            raise ValueError(f"a duration must not be negative, got {value!r}")
    raise ValueError(f"expected a duration with a unit such as '12ms' or '0.5s', got {value!r}")


@dataclass(frozen=True)
class AccuracyDrop:
    """How much task metric a student may lose versus the teacher.

    ``absolute``: ``value`` is in metric units (1pt = 0.01 of an accuracy in [0, 1]).
    ``relative``: ``value`` is a fraction of the teacher's metric (2% = 0.02).
    """

    kind: str  # "absolute" | "relative"
    value: float

    def min_allowed(self, teacher_metric: float) -> float:
        """The lowest student metric that still passes."""
        if self.kind == "absolute":
            return teacher_metric - self.value
        return teacher_metric * (1.0 - self.value)

    def max_allowed(self, teacher_metric: float) -> float:
        """The highest student error that still passes, for a lower-is-better metric (WAPE, MAE):
        the allowed degradation points the other way."""
        if self.kind == "absolute":
            return teacher_metric + self.value
        return teacher_metric * (1.0 + self.value)

    def limit(self, teacher_metric: float, higher_is_better: bool = True) -> float:
        """``min_allowed`` for accuracy-like metrics, ``max_allowed`` for errors."""
        return self.min_allowed(teacher_metric) if higher_is_better else self.max_allowed(teacher_metric)

    def __str__(self) -> str:
        if self.kind == "absolute":
            return f"{self.value * 100:g}pt"
        return f"{self.value * 100:g}%"


def parse_accuracy_drop(value: object) -> AccuracyDrop:
    """Parse "1pt" / "1.5 points" (absolute percentage points) or "2%" (relative to the teacher).

    >>> parse_accuracy_drop("1pt")
    AccuracyDrop(kind='absolute', value=0.01)
    """
    if isinstance(value, str):
        text = value.strip()
        m = re.fullmatch(_NUMBER + r"\s*(pt|pts|points?|%)", text)
        if m:
            amount = float(m.group(1))
            # More than everything ("150%") reads as a budget but is a gate that cannot fail; 100 is
            # kept as the explicit way to say "no accuracy budget".
            if amount > 100:
                raise ValueError(f"an accuracy drop is at most 100 (points or %), got {value!r}")
            return AccuracyDrop("relative" if m.group(2) == "%" else "absolute", amount / 100.0)
        if text.startswith("-"):
            raise ValueError(f"an accuracy drop must not be negative, got {value!r}")
    raise ValueError(
        f"expected an accuracy drop such as '1pt' (absolute points) or '2%' (relative), got {value!r}"
    )


def format_bytes(n: float) -> str:
    """Human-readable size with binary units: 1536 -> '1.5 KiB'."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"
