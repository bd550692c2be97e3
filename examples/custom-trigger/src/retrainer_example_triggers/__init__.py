"""Example retrainer trigger plugins."""

from retrainer_example_triggers.error_rate import ErrorRateTrigger

__all__ = ["ErrorRateTrigger"]
