"""Last-mile conditions: named chains of audio transforms every utterance is also heard under."""

from harness.conditions.simulate import Rendering, Simulator, with_condition
from harness.conditions.spec import CONDITION_TAG, Condition, check_conditions

__all__ = ["CONDITION_TAG", "Condition", "Rendering", "Simulator", "check_conditions", "with_condition"]
