"""The examples in the framework's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "retrainer.windows",
    "retrainer.triggers._frozen",
    "retrainer.triggers.base",
    "retrainer.triggers.context",
    "retrainer.triggers.decision",
    "retrainer.triggers.policy",
    "retrainer.triggers.registry",
    "retrainer.triggers.undecided",
    "retrainer.stats.floor",
    "retrainer.testing.fakes",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
