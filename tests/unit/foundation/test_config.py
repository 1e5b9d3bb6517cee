"""The strict config builder every stage config uses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from edge_kd.config import from_dict, parsed, to_dict
from edge_kd.errors import ConfigError
from edge_kd.registry import Registry
from edge_kd.errors import InputError
from edge_kd.units import parse_bytes


@dataclass(frozen=True)
class Inner:
    size: int = parsed(parse_bytes)
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner
    ratio: float = 0.5
    tags: tuple[str, ...] = ()
    optional: int | None = None

    def __post_init__(self):
        if not 0 < self.ratio < 1:
            raise ValueError(f"ratio must be in (0, 1), got {self.ratio}")


def test_builds_nested_and_parses_units():
    cfg = from_dict(Outer, {"name": "x", "inner": {"size": "2KiB", "mode": "b"}, "ratio": 1 / 4, "tags": ["p"]})
    assert cfg.inner.size == 2048 and cfg.inner.mode == "b" and cfg.tags == ("p",)
    assert to_dict(cfg)["tags"] == ["p"]


@pytest.mark.parametrize("data,key,words", [
    ({"name": "x", "inner": {"size": 1}, "colour": 1}, "colour", "unknown key"),
    ({"inner": {"size": 1}}, "name", "required"),
    ({"name": 3, "inner": {"size": 1}}, "name", "a string"),
    ({"name": "x", "inner": {"size": "lots"}}, "inner.size", "size"),
    ({"name": "x", "inner": {"size": 1, "mode": "c"}}, "inner.mode", "one of"),
    ({"name": "x", "inner": {"size": 1}, "ratio": "half"}, "ratio", "a number"),
    ({"name": "x", "inner": {"size": 1}, "ratio": True}, "ratio", "a number"),
    ({"name": "x", "inner": {"size": 1}, "optional": "x"}, "optional", "integer"),
])
def test_errors_name_the_key(data, key, words):
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, data, source="recipe.toml")
    assert info.value.key == key and info.value.source == "recipe.toml" and words in str(info.value)


def test_post_init_range_check_becomes_config_error():
    with pytest.raises(ConfigError, match="ratio must be in"):
        from_dict(Outer, {"name": "x", "inner": {"size": 1}, "ratio": 1.5}, source="r.toml")


def test_registry_lists_known_names_and_suggests():
    reg: Registry[int] = Registry("KD loss")
    reg.add("hinton", 1)
    reg.add("mse", 2)
    assert reg.get("hinton") == 1 and "mse" in reg and reg.names() == ["hinton", "mse"]
    with pytest.raises(InputError, match="unknown KD loss 'hintn'; known: hinton, mse. Did you mean 'hinton'"):
        reg.get("hintn")
    with pytest.raises(ValueError):
        reg.add("mse", 3)
