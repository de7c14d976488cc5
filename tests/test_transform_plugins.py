"""Issue 26: a transform is one class (options + render), found like backends and importers, entry points included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import install_plugin
from pydantic import ValidationError

from harness.conditions import Condition, Simulator
from harness.conditions.spec import BUILTIN_TRANSFORMS, TransformRegistry
from harness.data.manifest import Utterance

PLUGIN = '''
from typing import Literal

from pydantic import Field

from harness.conditions.spec import AudioTransform


class Delay(AudioTransform):
    """Shift the signal right by ``ms`` milliseconds (a late-starting recorder)."""

    type: Literal["delay"]
    ms: float = Field(gt=0, le=1000)

    def render(self, samples, sample_rate, rng, context):
        shift = int(sample_rate * self.ms / 1000)
        out = samples.copy()
        out[shift:] = samples[: samples.size - shift]
        out[:shift] = 0
        return out
'''


@pytest.fixture
def delay_plugin(tmp_path, monkeypatch):
    folder = install_plugin(tmp_path / "plugin", "delay_transform", PLUGIN, "asrfair.transforms", "delay", "Delay")
    monkeypatch.syspath_prepend(str(folder))
    return folder


def _utterance() -> Utterance:
    return Utterance(id="u1", audio=Path("u1.wav"), text="hello", speaker="s1")


def test_a_plugin_transform_validates_renders_and_keys(delay_plugin):
    condition = Condition.model_validate({"name": "late", "transforms": [{"type": "delay", "ms": 10}]})
    simulator = Simulator([_utterance()], seed=0, sample_rate=16000)
    samples = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    out = simulator.render(condition, _utterance(), samples, 16000)
    assert np.all(out[:160] == 0) and np.array_equal(out[160:], samples[:-160])
    longer = Condition.model_validate({"name": "late", "transforms": [{"type": "delay", "ms": 20}]})
    keys = {simulator.key(c, _utterance(), "clip", lambda u: u.id) for c in (condition, longer)}
    assert len(keys) == 2  # the options are part of the rendered clip's cache key
    assert condition.describe() == "delay ms=10"


def test_a_plugin_transform_option_error_names_the_transform(delay_plugin):
    message = r"transforms\.0\n  Value error, delay: 'ms': Input should be greater than 0"
    with pytest.raises(ValidationError, match=message):
        Condition.model_validate({"name": "late", "transforms": [{"type": "delay", "ms": -1}]})


def test_an_unknown_transform_suggests_the_nearest(delay_plugin):
    with pytest.raises(ValidationError, match="unknown transform 'dellay'; did you mean 'delay'"):
        Condition.model_validate({"name": "x", "transforms": [{"type": "dellay", "ms": 5}]})


def test_every_builtin_is_registered_and_renders():
    registry = TransformRegistry.default()
    assert set(BUILTIN_TRANSFORMS) <= set(registry.names())
    for name in BUILTIN_TRANSFORMS:
        cls = registry.load(name)
        assert cls.render is not TransformRegistry.base.render, f"{name} does not implement render"
