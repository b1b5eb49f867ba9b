"""Name -> class registries for models, samplers, metrics, datasets and interpolators.

A registry is a small typed dictionary with strict errors: registering a name twice and asking for an
unknown name both raise, and the unknown-name error lists what is available.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name: a KeyError for lookups, a ValueError for user input."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """A named collection of classes or functions of one kind (``kind`` is used in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@SAMPLERS.register("gmm")`` adds the decorated object under ``name``."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered (by {self._entries[name]!r})")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):   # TypeError: an unhashable name (a list from a config)
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; expected one of: {', '.join(sorted(self._entries)) or '(none)'}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


def parse_spec(spec: str) -> tuple[str, dict[str, object]]:
    """Parse ``"name:key=value,key=value"`` into ``("name", {key: value})``.

    Values are read as YAML scalars, so ``k=50`` is an int, ``reg=1e-6`` a float, ``full=true`` a bool,
    and anything else a string.  Used by ``--sampler gmm:k=50,covariance=diag`` and similar options.
    """
    from latentatlas.config import read_scalar

    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"spec: expected 'name' or 'name:key=value,...', got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"spec {spec!r}: expected a name before ':', e.g. 'gmm:k=50'")
    params: dict[str, object] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"spec {spec!r}: expected key=value, got {item!r}")
        if key in params:
            raise ValueError(f"spec {spec!r}: key {key!r} given twice; expected each key once")
        params[key] = read_scalar(value, f"spec {spec!r}: {key}")
    return name, params
