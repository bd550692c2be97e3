"""The examples in the module docstrings are part of the documentation: keep them true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["binning", "psi", "numeric", "categorical", "multiple", "proportions", "drift", "paired", "sequential"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"retrainer.stats.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"retrainer.stats.{name} has no examples"
    assert result.failed == 0


def test_public_api_is_deliberate():
    import retrainer.stats as stats

    assert sorted(stats.__all__) == sorted(set(stats.__all__))
    for name in stats.__all__:
        assert getattr(stats, name) is not None
    # the binning helper is a function, not shadowed by the proportions module
    assert callable(stats.bin_proportions) and callable(stats.two_proportion_ztest)
