"""Registry: entry-point discovery, broken and duplicate plugins, programmatic registration."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from retrainer.config import TriggerSpec
from retrainer.errors import ConfigError, TriggerError, TriggerLoadError
from retrainer.triggers import (
    ENTRY_POINT_GROUP,
    Decision,
    InvalidTriggerParams,
    NeverTrigger,
    Trigger,
    available_triggers,
    build_triggers,
    register,
)
from retrainer.triggers import registry


class Threshold(Trigger):
    name = "threshold"

    class Params(Trigger.Params):
        limit: float = 1.0

    def evaluate(self, ctx: Any) -> Decision:
        return Decision.ok(self.label, "fine")


@dataclass
class FakeDist:
    name: str
    version: str


@dataclass
class FakeEntryPoint:
    """What importlib.metadata yields: name, value, dist and load()."""

    name: str
    value: str
    dist: FakeDist | None
    target: Any = None
    group: str = ENTRY_POINT_GROUP

    def load(self) -> Any:
        if isinstance(self.target, BaseException):
            raise self.target
        return self.target


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    eps: list[Any] = [
        FakeEntryPoint("threshold", "acme_triggers:Threshold", FakeDist("acme-triggers", "1.2.0"), Threshold),
        # a real EntryPoint object, loaded for real
        EntryPoint(name="never", value="retrainer.triggers.base:NeverTrigger", group=ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(registry, "_entry_points", lambda: eps)
    return eps


def test_discovery_lists_installed_triggers_with_their_distribution(installed: list[Any]) -> None:
    infos = available_triggers()
    assert list(infos) == ["never", "threshold"]
    t = infos["threshold"]
    assert (t.cls, t.distribution, t.version, t.error) == (Threshold, "acme-triggers", "1.2.0", None)
    assert t.params_schema["properties"]["limit"]["default"] == 1.0
    assert infos["never"].cls is NeverTrigger and infos["never"].distribution is None


def test_build_triggers_uses_the_entry_point_name_as_type_and_the_label(installed: list[Any]) -> None:
    built = build_triggers([TriggerSpec(type="threshold", name="tight", limit=0.2), {"type": "never"}])
    assert isinstance(built[0], Threshold) and built[0].label == "tight" and built[0].params.limit == 0.2
    assert isinstance(built[1], NeverTrigger) and built[1].label == "never"
    ready = NeverTrigger(label="mine")
    assert build_triggers([ready])[0] is ready


def test_a_broken_plugin_is_skipped_with_a_warning_unless_used(
    installed: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    installed.append(
        FakeEntryPoint("broken", "broken_pkg.mod:Broken", FakeDist("broken-pkg", "0.1"),
                       ModuleNotFoundError("No module named 'broken_pkg'"))
    )
    with caplog.at_level(logging.WARNING, logger="retrainer.triggers.registry"):
        infos = available_triggers()
    assert infos["broken"].cls is None
    assert "ModuleNotFoundError" in infos["broken"].error
    assert infos["threshold"].cls is Threshold  # the others still load
    assert any("skipping trigger plugin 'broken'" in r.getMessage() and "broken-pkg" in r.getMessage()
               for r in caplog.records)
    assert len(build_triggers([{"type": "threshold"}])) == 1  # not used: no error
    with pytest.raises(TriggerLoadError) as info:
        build_triggers([{"type": "threshold"}, {"type": "broken"}])
    message = str(info.value)
    assert "'broken'" in message and "distribution 'broken-pkg'" in message
    assert "ModuleNotFoundError: No module named 'broken_pkg'" in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_two_plugins_with_one_name_are_an_error_naming_both(installed: list[Any]) -> None:
    installed.append(FakeEntryPoint("threshold", "other:Threshold", FakeDist("other-dist", "2.0"), Threshold))
    assert "acme-triggers" in available_triggers()["threshold"].error
    with pytest.raises(TriggerLoadError, match="two plugins claim the trigger type 'threshold'") as info:
        build_triggers([{"type": "threshold"}])
    assert "'acme-triggers'" in str(info.value) and "'other-dist'" in str(info.value)
    # the same target listed twice (duplicate path entries) is one plugin, not a clash
    installed[-1] = FakeEntryPoint("threshold", "acme_triggers:Threshold", FakeDist("acme-triggers", "1.2.0"), Threshold)
    assert available_triggers()["threshold"].cls is Threshold


def test_loaded_object_must_be_a_trigger_with_the_matching_name(installed: list[Any]) -> None:
    installed.append(FakeEntryPoint("func", "acme:func", FakeDist("acme", "1"), len))
    installed.append(FakeEntryPoint("thresh", "acme:Threshold", FakeDist("acme", "1"), Threshold))
    with pytest.raises(TriggerLoadError, match="'func' from distribution 'acme'.*not a subclass of retrainer.triggers.Trigger"):
        build_triggers([{"type": "func"}])
    with pytest.raises(TriggerLoadError, match="name = 'threshold' but the entry point is 'thresh'"):
        build_triggers([{"type": "thresh"}])


def test_unknown_type_suggests_the_closest_name(installed: list[Any]) -> None:
    with pytest.raises(TriggerLoadError, match=r"triggers\[0\]: unknown trigger type 'treshold'.*Did you mean 'threshold'"):
        build_triggers([{"type": "treshold"}])


def test_invalid_params_name_the_position_trigger_and_field(installed: list[Any]) -> None:
    with pytest.raises(InvalidTriggerParams) as info:
        build_triggers([{"type": "never"}, {"type": "threshold", "name": "t2", "limit": "high", "lmit": 2}])
    message = str(info.value)
    assert message.startswith("triggers[1]: params of trigger 't2' (type 'threshold') are invalid (2 problems):")
    assert "  - limit: Input should be a valid number" in message
    assert "  - lmit: unknown key" in message
    assert isinstance(info.value, ConfigError) and isinstance(info.value, TriggerError)


def test_register_is_scoped_and_extra_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_entry_points", lambda: [])
    assert available_triggers() == {}
    with register(Threshold):
        assert list(available_triggers()) == ["threshold"]
        assert isinstance(build_triggers([{"type": "threshold"}])[0], Threshold)
    assert available_triggers() == {}
    with pytest.raises(TriggerLoadError, match="unknown trigger type 'threshold'"):
        build_triggers([{"type": "threshold"}])
    assert isinstance(build_triggers([{"type": "threshold"}], extra={"threshold": Threshold})[0], Threshold)
    with pytest.raises(TriggerLoadError, match="name = 'never' but the entry point is 'nothing'"):
        with register(NeverTrigger, "nothing"):
            pass


def test_the_real_entry_point_group_is_queried() -> None:
    # whatever is installed, discovery must not crash and every entry must be a TriggerInfo
    for name, info in available_triggers().items():
        assert info.name == name
