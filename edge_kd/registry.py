"""Name -> object registries with helpful errors (KD losses, range methods, runtimes, op policies, ...)."""
from __future__ import annotations

import difflib
import importlib
from typing import Any
from typing import Callable, Generic, Iterator, TypeVar

from edge_kd.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named registry. Unknown names raise an InputError that lists the known ones.

    >>> losses = Registry("KD loss")
    >>> @losses.register("mse")
    ... def mse(): ...
    >>> losses.get("mse") is mse
    True
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        self.register(name)(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise InputError(f"unknown {self.kind} {name!r}; known: {known}.{hint}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def names_in_order(self) -> list[str]:
        """The names in registration order."""
        return list(self._items)

    def values(self) -> list[T]:
        """The entries in registration order (the order lookups by other keys prefer)."""
        return list(self._items.values())

    def remove(self, name: str) -> T:
        """Unregister ``name`` (a plugin or a test that registered it); returns the entry."""
        self.get(name)
        return self._items.pop(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))


def load_ref(ref: str) -> Any:
    """The object a ``"package.module:attribute"`` reference names, imported on first use.

    Registries store references rather than objects so that looking an entry up imports nothing
    heavy: the module is imported when the entry is used (Olive's pass registry does the same).

    >>> load_ref("edge_kd.units:parse_bytes")("1KiB")
    1024
    """
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"{ref!r} is not a 'package.module:attribute' reference")
    return getattr(importlib.import_module(module), attr)
