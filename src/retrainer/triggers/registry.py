"""Finding trigger classes: entry points in the group ``retrainer.triggers``.

A distribution declares, in its pyproject.toml::

    [project.entry-points."retrainer.triggers"]
    my_trigger = "my_package.triggers:MyTrigger"

and ``type: my_trigger`` in retrainer.yaml then builds ``MyTrigger``. As with pluggy and keyring,
one broken plugin must not break the others: when listing, it is logged and skipped; only a
config that *uses* it fails, with a :class:`~retrainer.errors.TriggerLoadError` that names the
plugin, its distribution and the cause. Classes can also be supplied without installing anything
(``extra=`` or the :func:`register` context manager), which is what tests use.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from retrainer.config import TriggerSpec, format_validation_error, validation_problems
from retrainer.errors import ConfigError, RetrainerError, TriggerLoadError
from retrainer.triggers.base import InvalidTriggerParams, Trigger

ENTRY_POINT_GROUP = "retrainer.triggers"

log = logging.getLogger(__name__)

# Classes registered with `register(...)`; restored on exit, so no test leaks into another.
_registered: dict[str, type[Trigger]] = {}


@dataclass(frozen=True)
class TriggerInfo:
    """One trigger type as discovered; ``cls`` is None and ``error`` says why when it cannot load."""

    name: str
    cls: type[Trigger] | None
    distribution: str | None
    version: str | None
    params_schema: dict[str, Any] | None
    error: str | None = None


@dataclass(frozen=True)
class _Candidate:
    name: str
    entry_point: Any = None  # an importlib.metadata.EntryPoint (or any object with .load/.value)
    cls: type[Trigger] | None = None
    distribution: str | None = None
    version: str | None = None

    @property
    def origin(self) -> str:
        if self.cls is not None:
            return f"{self.cls.__module__}:{self.cls.__qualname__} (registered in code)"
        dist = f"distribution {self.distribution!r}" if self.distribution else "an unknown distribution"
        return f"{dist} ({getattr(self.entry_point, 'value', '?')})"


def _path_state() -> tuple[tuple[str, float], ...]:
    """sys.path with each entry's mtime: installing or removing a distribution changes its
    directory's mtime, so a scan cached under this key is never stale."""
    out = []
    for entry in sys.path:
        try:
            out.append((entry, os.stat(entry or ".").st_mtime))
        except OSError:
            out.append((entry, -1.0))
    return tuple(out)


# Scanning every installed distribution's metadata costs ~0.1 s: once per process and path
# state, not once per check (a fleet builds thousands of policies per cycle).
_scan_cache: dict[tuple[tuple[str, float], ...], list[Any]] = {}
_dist_cache: dict[tuple[Any, ...], tuple[str | None, str | None]] = {}


def _entry_points() -> list[Any]:
    """The group's entry points; the one seam tests replace."""
    key = _path_state()
    if key not in _scan_cache:
        _scan_cache.clear()
        _scan_cache[key] = list(entry_points(group=ENTRY_POINT_GROUP))
    return list(_scan_cache[key])


def _distribution(ep: Any) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    key = (getattr(ep, "name", None), getattr(ep, "value", None), str(getattr(dist, "_path", id(dist))))
    if key not in _dist_cache:
        name = getattr(dist, "name", None) or dist.metadata["Name"]
        _dist_cache[key] = (name, getattr(dist, "version", None))
    return _dist_cache[key]


def _candidates(extra: Mapping[str, type[Trigger]] | None) -> dict[str, list[_Candidate]]:
    found: dict[str, list[_Candidate]] = {}
    for ep in _entry_points():
        same = found.setdefault(ep.name, [])
        if any(c.entry_point.value == ep.value for c in same):
            continue  # the same target listed twice (e.g. duplicate path entries) is one plugin
        dist, version = _distribution(ep)
        same.append(_Candidate(ep.name, entry_point=ep, distribution=dist, version=version))
    # Code beats installation: an explicit class for a name replaces whatever is installed under it.
    for name, cls in {**_registered, **(extra or {})}.items():
        found[name] = [_Candidate(name, cls=cls)]
    return found


def _check_class(name: str, obj: Any, origin: str) -> type[Trigger]:
    if not (inspect.isclass(obj) and issubclass(obj, Trigger)):
        raise TriggerLoadError(
            f"trigger plugin {name!r} from {origin} is {obj!r}, not a subclass of retrainer.triggers.Trigger"
        )
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(obj.__abstractmethods__))
        raise TriggerLoadError(f"trigger plugin {name!r} from {origin} is abstract (does not implement {missing})")
    declared = getattr(obj, "name", None)
    if declared != name:
        raise TriggerLoadError(
            f"trigger plugin {name!r} from {origin}: the class says name = {declared!r} but the entry point is "
            f"{name!r}; they must match (the entry-point name is the `type:` in retrainer.yaml)"
        )
    return obj


def _load(name: str, candidates: Sequence[_Candidate]) -> type[Trigger]:
    if len(candidates) > 1:
        owners = " and ".join(c.origin for c in candidates)
        raise TriggerLoadError(f"two plugins claim the trigger type {name!r}: {owners}; uninstall one of them")
    (c,) = candidates
    if c.cls is not None:
        return _check_class(name, c.cls, c.origin)
    try:
        obj = c.entry_point.load()
    except Exception as exc:  # noqa: BLE001 - an import error, a syntax error, anything: report it
        raise TriggerLoadError(
            f"trigger plugin {name!r} from {c.origin} failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    return _check_class(name, obj, c.origin)


def available_triggers(*, extra: Mapping[str, type[Trigger]] | None = None) -> dict[str, TriggerInfo]:
    """Every trigger type, sorted by name. Broken plugins are logged and listed with ``error`` set."""
    out: dict[str, TriggerInfo] = {}
    for name, cands in sorted(_candidates(extra).items()):
        dist, version = cands[0].distribution, cands[0].version
        try:
            cls = _load(name, cands)
        except TriggerLoadError as exc:
            log.warning("skipping trigger plugin %r: %s", name, exc)
            out[name] = TriggerInfo(name, None, dist, version, None, str(exc))
            continue
        out[name] = TriggerInfo(name, cls, dist, version, cls.Params.model_json_schema())
    return out


def build_triggers(
    specs: Sequence[TriggerSpec | Mapping[str, Any] | Trigger],
    *,
    extra: Mapping[str, type[Trigger]] | None = None,
) -> list[Trigger]:
    """Instantiate the configured triggers. Only the types used are loaded; built triggers pass through."""
    candidates = _candidates(extra)
    classes: dict[str, type[Trigger]] = {}
    return [_build_one(i, spec, candidates, classes) for i, spec in enumerate(specs)]


def trigger_problems(
    specs: Sequence[TriggerSpec | Mapping[str, Any] | Trigger],
    *,
    extra: Mapping[str, type[Trigger]] | None = None,
) -> list[str]:
    """Every problem :func:`build_triggers` would stop at, all at once, one line each (empty: all build)."""
    candidates = _candidates(extra)
    classes: dict[str, type[Trigger]] = {}
    problems: list[str] = []
    for i, spec in enumerate(specs):
        try:
            _build_one(i, spec, candidates, classes)
        except InvalidTriggerParams as exc:
            problems += _param_problems(i, spec, classes) or [" ".join(str(exc).split())]
        except RetrainerError as exc:
            problems.append(" ".join(str(exc).split()))
    return problems


def _param_problems(i: int, spec: Any, classes: dict[str, type[Trigger]]) -> list[str]:
    """One line per bad key, with its path as written in retrainer.yaml: ``triggers[i].<key>``."""
    spec = spec if isinstance(spec, TriggerSpec) else TriggerSpec.model_validate(spec)
    params_model = classes[spec.type].Params
    try:
        params_model.model_validate(dict(spec.params))
    except ValidationError as err:
        return validation_problems(err, f"triggers[{i}]", params_model)
    return []


def _build_one(
    i: int,
    spec: TriggerSpec | Mapping[str, Any] | Trigger,
    candidates: dict[str, list[_Candidate]],
    classes: dict[str, type[Trigger]],
) -> Trigger:
    if isinstance(spec, Trigger):
        return spec
    if not isinstance(spec, TriggerSpec):
        try:
            spec = TriggerSpec.model_validate(spec)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, f"triggers[{i}]")) from None
    if spec.type not in candidates:
        near = difflib.get_close_matches(spec.type, candidates, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        known = ", ".join(sorted(candidates)) or "none installed"
        raise TriggerLoadError(
            f"triggers[{i}]: unknown trigger type {spec.type!r} (available: {known}).{hint} "
            f"Is the plugin installed? It must declare an entry point in the group {ENTRY_POINT_GROUP!r}."
        )
    if spec.type not in classes:
        classes[spec.type] = _load(spec.type, candidates[spec.type])
    try:
        return classes[spec.type](spec.params, label=spec.label)
    except InvalidTriggerParams as exc:
        raise InvalidTriggerParams(f"triggers[{i}]: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a plugin whose constructor is broken
        raise TriggerLoadError(
            f"triggers[{i}]: trigger plugin {spec.type!r} could not be constructed: {type(exc).__name__}: {exc}"
        ) from exc


@contextmanager
def register(cls: type[Trigger], name: str | None = None) -> Iterator[type[Trigger]]:
    """Make ``cls`` available as ``type: name`` (default ``cls.name``) inside the ``with`` block only.

    >>> from retrainer.triggers.base import NeverTrigger
    >>> with register(NeverTrigger, "nothing"):
    ...     pass
    Traceback (most recent call last):
    ...
    retrainer.errors.TriggerLoadError: trigger plugin 'nothing' from retrainer.triggers.base:NeverTrigger (registered in code): the class says name = 'never' but the entry point is 'nothing'; they must match (the entry-point name is the `type:` in retrainer.yaml)
    """
    key = name or getattr(cls, "name", None)
    if not isinstance(key, str) or not key:
        raise TypeError(f"{cls!r} has no `name`; pass one")
    _check_class(key, cls, _Candidate(key, cls=cls).origin)
    missing = object()
    previous = _registered.get(key, missing)
    _registered[key] = cls
    try:
        yield cls
    finally:
        if previous is missing:
            _registered.pop(key, None)
        else:
            _registered[key] = previous  # type: ignore[assignment]


__all__ = ["ENTRY_POINT_GROUP", "TriggerInfo", "available_triggers", "build_triggers", "register"]
