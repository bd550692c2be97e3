from retrainer.testing import check_trigger

from retrainer_example_triggers import ErrorRateTrigger


def test_conforms():
    check_trigger(ErrorRateTrigger, params={"max_error_rate": 0.2, "min_labels": 20})
