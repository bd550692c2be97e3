"""The one extension point: a :class:`Trigger` looks at a context and returns a Decision.

A plugin is a subclass with a ``name`` (its entry-point name, the ``type:`` in retrainer.yaml),
a pydantic ``Params`` model, and ``evaluate``. Keep ``evaluate`` free of I/O (read through the
context), of mutation and of randomness: policies, backtests and the conformance kit
(``retrainer.testing.check_trigger``) rely on it.

>>> class Always(Trigger):
...     name = "always"
...     def evaluate(self, ctx):
...         return Decision.fire(self.label, reason="Always fires.")
>>> Always(label="a").evaluate(None).trigger
'a'
>>> Always({"typo": 1})
Traceback (most recent call last):
...
retrainer.errors.InvalidTriggerParams: params of trigger 'always' (type 'always') are invalid (1 problem):
  - typo: unknown key (check the spelling; `retrainer triggers list` lists the keys)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from retrainer.config import format_validation_error
from retrainer.errors import InvalidTriggerParams
from retrainer.triggers.context import TriggerContext
from retrainer.triggers.decision import Decision


class Trigger(ABC):
    """Base class of every trigger, built-in or plugin, and of the policies that combine them."""

    name: ClassVar[str]

    class Params(BaseModel):
        """Override with the trigger's parameters. Unknown keys are rejected; params are immutable."""

        model_config = ConfigDict(extra="forbid", frozen=True)

    params: BaseModel
    label: str

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None, *, label: str | None = None) -> None:
        if not isinstance(getattr(type(self), "name", None), str) or not type(self).name:
            raise TypeError(f"{type(self).__qualname__} must set the class attribute `name` (its entry-point name)")
        self.label = label or self.name
        self.params = self.validate_params(params, label=self.label)

    @classmethod
    def validate_params(cls, params: BaseModel | Mapping[str, Any] | None, *, label: str | None = None) -> BaseModel:
        """``params`` as a ``cls.Params`` instance, or :class:`InvalidTriggerParams` naming each bad field."""
        if isinstance(params, cls.Params):
            return params
        if isinstance(params, BaseModel):  # another model: revalidate its fields, never trust its type
            params = params.model_dump()
        where = f"params of trigger {label or cls.name!r} (type {cls.name!r})"
        if params is not None and not isinstance(params, Mapping):
            raise InvalidTriggerParams(f"{where} must be a mapping of keys, not {type(params).__name__}")
        try:
            return cls.Params.model_validate(dict(params or {}))
        except ValidationError as err:
            message = (
                format_validation_error(err, where, cls.Params)
                .replace(" is invalid (", " are invalid (", 1)
                .replace("`retrainer config schema`", "`retrainer triggers list`")
            )
            raise InvalidTriggerParams(message) from None

    @abstractmethod
    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Decide at ``ctx.now``. Return a Decision labelled ``self.label``; never mutate ``ctx``."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}(label={self.label!r}{', ' if args else ''}{args})"


class NeverTrigger(Trigger):
    """The null trigger: never fires. Handy as a placeholder and as a policy's neutral element.

    >>> NeverTrigger().evaluate(None).status
    'ok'
    """

    name = "never"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        return Decision.ok(self.label, reason="The null trigger never fires.")


__all__ = ["InvalidTriggerParams", "NeverTrigger", "Trigger"]
