"""A deterministic backend for pipeline tests, demos and CI dry runs.

It returns the reference text (respelt per tag where ``rewrites`` says so, e.g. a dialect's
``gonna``), or injects word errors at configured rates per tag value, so that a test can plant a
known disparity and check the scorer recovers it. Each reference word independently becomes an
error with probability ``p``: a substitution, a deletion, or an inserted extra word, in the
proportions of ``mix``. ``p`` combines every matching tag rate and every matching rule (a rate
for a combination of tag values, e.g. one accent under one condition) as independent causes:
``p = 1 - (1 - default_rate) * prod(1 - rate)``. ``loops`` plant a repetition loop after chosen
utterances' transcripts (a runaway, :mod:`harness.scoring.runaway`). The random stream is seeded per utterance from
``seed`` and the utterance id, so output does not depend on order, and an utterance heard under
several conditions draws the same numbers under each (its errors under a worse condition include
those under a better one, as paired data should).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.backends.base import AudioRequest, Backend, BackendOptions, Capabilities, Transcript
from harness.data.manifest import Utterance

# Words no English sentence in a test set is likely to hold, and no normaliser rewrites.
_FILLERS = ("quokka", "zephyr", "fjord", "xylem", "quasar", "kumquat", "vortex", "sphinx")


class StubRule(BaseModel):
    """An extra error rate for utterances matching every ``tag: value`` in ``when``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    when: dict[str, str] = Field(min_length=1)
    rate: float = Field(ge=0.0, le=1.0)


class StubRewrite(BaseModel):
    """Write ``words`` (reference phrase → the stub's spelling, e.g. ``going to: gonna``) for
    utterances matching every ``tag: value`` in ``when``: a model that transcribes a dialect's
    forms as spoken, to test what the normaliser makes of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    when: dict[str, str] = Field(min_length=1)
    words: dict[str, str] = Field(min_length=1)


class StubLoop(BaseModel):
    """A hallucination loop, as Whisper makes them: after its transcript, each utterance in ``ids``
    (and matching every ``tag: value`` in ``when``, e.g. one condition) gets ``words`` repeated
    ``repeats`` times, to test runaway detection and the capped view (harness/scoring/runaway.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ids: list[str] = Field(min_length=1)
    when: dict[str, str] = Field(default_factory=dict)
    words: str = Field("my", min_length=1)
    repeats: int = Field(50, ge=1)


class StubOptions(BackendOptions):
    error_rates: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="per tag, per value: probability that each reference word becomes an error",
    )
    error_rules: list[StubRule] = Field(
        default_factory=list, description="extra rates for tag combinations: [{when: {tag: value, ...}, rate: p}]"
    )
    default_rate: float = Field(0.0, ge=0.0, le=1.0, description="error probability for every word")
    mix: dict[str, float] = Field(
        default_factory=lambda: {"substitution": 0.6, "deletion": 0.2, "insertion": 0.2},
        description="relative weights of substitution / deletion / insertion",
    )
    failure_rates: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="per tag, per value: probability an utterance fails"
    )
    rewrites: list[StubRewrite] = Field(
        default_factory=list,
        description="spellings for tag combinations, applied before errors: [{when: {tag: value}, words: {a: b}}]",
    )
    loops: list[StubLoop] = Field(
        default_factory=list,
        description="planted loops: [{ids: [utterance id, ...], when: {tag: value}, words: my, repeats: 50}]",
    )
    seed: int = Field(0, description="seed of the per-utterance random streams")

    @field_validator("error_rates", "failure_rates")
    @classmethod
    def _rates_in_range(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for tag, rates in value.items():
            for tag_value, rate in rates.items():
                if not 0.0 <= rate <= 1.0:
                    raise ValueError(f"rate for {tag}={tag_value} must be in [0, 1], got {rate}")
        return value

    @field_validator("mix")
    @classmethod
    def _mix_known(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - {"substitution", "deletion", "insertion"}
        if unknown:
            raise ValueError(f"unknown error kinds {sorted(unknown)}; use substitution, deletion, insertion")
        if not all(0 <= w < math.inf for w in value.values()) or sum(value.values()) <= 0:  # NaN fails 0 <= w
            raise ValueError("mix weights must be finite, >= 0 and not all zero")
        return value


class StubBackend(Backend):
    name: ClassVar[str] = "stub"
    description: ClassVar[str] = "Deterministic: echoes the reference, optionally with seeded errors per tag"
    Options = StubOptions
    capabilities: ClassVar[Capabilities] = Capabilities(needs_audio=False, max_batch_size=256, detects_language=True)
    options: StubOptions

    def transcribe(self, batch: list[AudioRequest]) -> list[Transcript]:
        out = []
        for request in batch:
            utt = request.utterance
            rng = self._rng(utt)
            if rng.random() < _combined(self.options.failure_rates, 0.0, utt):
                out.append(Transcript.failed(utt.id, "StubFailure: injected failure"))
            else:
                out.append(Transcript.ok(utt.id, self._loop(utt, self._corrupt(utt, rng))))
        return out

    def _rng(self, utt: Utterance) -> np.random.Generator:
        digest = hashlib.sha256(f"{self.options.seed}|{utt.id}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def _corrupt(self, utt: Utterance, rng: np.random.Generator) -> str:
        rate = _combined(self.options.error_rates, self.options.default_rate, utt, self.options.error_rules)
        words = self._respell(utt).split()
        if rate == 0.0:
            return " ".join(words)
        kinds = list(self.options.mix)
        weights = np.array([self.options.mix[k] for k in kinds], dtype=float)
        weights /= weights.sum()
        hit = rng.random(len(words)) < rate
        choice = rng.choice(len(kinds), size=len(words), p=weights)
        fillers = rng.integers(len(_FILLERS), size=len(words))
        out: list[str] = []
        for word, is_error, kind, filler in zip(words, hit, choice, fillers, strict=True):
            if not is_error:
                out.append(word)
            elif kinds[kind] == "substitution":
                out.append(_FILLERS[filler])
            elif kinds[kind] == "insertion":
                out.extend((word, _FILLERS[filler]))
            # a deletion emits nothing
        return " ".join(out)

    def _loop(self, utt: Utterance, text: str) -> str:
        for loop in self.options.loops:
            if utt.id in loop.ids and all(utt.tags.get(tag) == value for tag, value in loop.when.items()):
                text = " ".join([text, *[loop.words] * loop.repeats])
        return text

    def _respell(self, utt: Utterance) -> str:
        text = utt.text
        for rewrite in self.options.rewrites:
            if all(utt.tags.get(tag) == value for tag, value in rewrite.when.items()):
                for phrase, spelling in rewrite.words.items():
                    text = re.sub(rf"\b{re.escape(phrase)}\b", spelling, text, flags=re.IGNORECASE)
        return text

    def fingerprint(self) -> dict[str, Any]:
        return {"backend": self.name, "options": self.options.model_dump()}

    def request_key(self, utt: Utterance, audio_key: str) -> str:
        # The stub's output depends on what it reads from the manifest, not on the audio.
        return f"{utt.id}|{utt.text}|{sorted(utt.tags.items())}"


def _combined(rates: dict[str, dict[str, float]], base: float, utt: Utterance, rules: Sequence[StubRule] = ()) -> float:
    keep = 1.0 - base
    for tag, by_value in rates.items():
        value = utt.tags.get(tag)
        if value is not None and value in by_value:
            keep *= 1.0 - by_value[value]
    for rule in rules:
        if all(utt.tags.get(tag) == value for tag, value in rule.when.items()):
            keep *= 1.0 - rule.rate
    return 1.0 - keep
