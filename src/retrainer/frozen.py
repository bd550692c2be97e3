"""Deep-frozen, picklable copies of plain data (evidence, reference profiles).

``types.MappingProxyType`` would be the obvious choice but it cannot be pickled, and Decisions
travel between processes (Prefect results, Dask workers). A read-only ``dict`` subclass keeps
``json.dumps`` and ``==`` working unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import numpy as np


class FrozenDict(dict):
    """A dict that refuses changes after construction.

    >>> d = FrozenDict({"a": 1})
    >>> d["a"] = 2
    Traceback (most recent call last):
    TypeError: this mapping is read-only
    """

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("this mapping is read-only")

    __setitem__ = __delitem__ = __ior__ = _readonly  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        # The default dict pickling re-inserts items with __setitem__, which is disabled.
        return (type(self), (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda kv: repr(kv[0]))))


def readonly_array(arr: np.ndarray) -> np.ndarray:
    """A read-only view: the caller's array is untouched, ours cannot be written through."""
    view = np.asarray(arr).view()
    view.flags.writeable = False
    return view


class LazyFrozenMapping(Mapping):  # type: ignore[type-arg]
    """A read-only mapping loaded (and deep-frozen) on first use.

    ``run_check`` hands the champion's reference profile over this way: a check that reads
    its drift from ingest-time histograms never touches the profile (megabytes of JSON),
    while a trigger that does read it pays once. Pickles as the loaded :class:`FrozenDict`.
    """

    def __init__(self, load: Any) -> None:
        self._load = load
        self._data: FrozenDict | None = None

    def _loaded(self) -> FrozenDict:
        if self._data is None:
            self._data = deep_freeze(self._load())
        return self._data

    def __getitem__(self, key: Any) -> Any:
        return self._loaded()[key]

    def __iter__(self) -> Any:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self._loaded()),))


def deep_freeze(value: Any) -> Any:
    """Mappings -> FrozenDict, lists/tuples -> tuples, arrays -> read-only views; scalars as they are."""
    if isinstance(value, LazyFrozenMapping):  # frozen when it loads
        return value
    if isinstance(value, Mapping):
        return FrozenDict({k: deep_freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(deep_freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return readonly_array(value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of :func:`deep_freeze` for JSON-shaped data: plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value
