"""Render an utterance as it would sound under a condition, reproducibly.

Every random choice (noise samples, tone phase, babble talkers and offsets, room response) is
drawn from a generator seeded by (run seed, utterance id, condition name, transform position),
so a rerun or a resumed run renders the same samples and hits the transcript cache, and the
order utterances are processed in does not matter.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from harness.conditions import dsp
from harness.conditions.spec import Condition
from harness.data.audio import file_sha256, load_audio, load_file
from harness.data.manifest import Utterance

AudioKey = Callable[[Utterance], str]
# Part of every rendered clip's cache key: bump it whenever a transform renders differently, so a
# changed renderer is never served transcripts of the old audio.
RENDER_VERSION = 2
_DECODED_CACHE = 256  # babble sources kept decoded (each is reused by several utterances)


@dataclass(frozen=True)
class Rendering:
    """One condition, bound to the simulator: what the executor calls per utterance."""

    simulator: Simulator
    condition: Condition

    @property
    def changes_audio(self) -> bool:
        return bool(self.condition.transforms)

    def key(self, utt: Utterance, audio_key: str, audio_key_of: AudioKey) -> str:
        """Content key of the rendered audio; the clip's own key when nothing is changed, so a
        clean condition shares cached transcripts with runs that had no conditions."""
        if not self.changes_audio:
            return audio_key
        return self.simulator.key(self.condition, utt, audio_key, audio_key_of)

    def apply(self, utt: Utterance, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        return self.simulator.render(self.condition, utt, samples, sample_rate)


class Simulator:
    """Renders utterances under conditions. ``pool``: the manifest, where babble talkers come from."""

    def __init__(self, pool: Sequence[Utterance], seed: int, sample_rate: int) -> None:
        self._pool = sorted(pool, key=lambda u: u.id)  # independent of manifest order
        self._speakers = np.array([u.speaker or f"utt:{u.id}" for u in self._pool], dtype=object)
        self._seed = seed
        self._sample_rate = sample_rate
        self._noise: dict[Path, np.ndarray] = {}
        self._noise_digests: dict[Path, str] = {}
        self._decoded: OrderedDict[str, np.ndarray] = OrderedDict()

    def bind(self, condition: Condition) -> Rendering:
        return Rendering(self, condition)

    def key(self, condition: Condition, utt: Utterance, audio_key: str, audio_key_of: AudioKey) -> str:
        context = _Context(self, utt, audio_key_of)
        chain = [
            {**transform.model_dump(mode="json"), **transform.key_parts(context, rng)}
            for transform, rng in zip(condition.transforms, self._rngs(condition, utt), strict=True)
        ]
        blob = json.dumps([RENDER_VERSION, audio_key, self._seed, utt.id, condition.name, chain], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def render(self, condition: Condition, utt: Utterance, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        out = samples.astype(np.float32)
        context = _Context(self, utt, None)
        for transform, rng in zip(condition.transforms, self._rngs(condition, utt), strict=True):
            out = transform.render(out, sample_rate, rng, context)
        return out

    def _rngs(self, condition: Condition, utt: Utterance) -> list[np.random.Generator]:
        words = [_words(utt.id), _words(condition.name)]
        root = np.random.SeedSequence([self._seed & 0xFFFFFFFF, *words[0], *words[1]])
        return [np.random.default_rng(child) for child in root.spawn(len(condition.transforms))]

    def _babble_talkers(self, utt: Utterance, talkers: int, rng: np.random.Generator) -> list[Utterance]:
        """``talkers`` distinct clips of other speakers (other clips if nobody else speaks)."""
        own = utt.speaker or f"utt:{utt.id}"
        others = np.flatnonzero(self._speakers != own)
        if others.size == 0:
            others = np.array([i for i, u in enumerate(self._pool) if u.id != utt.id], dtype=np.int64)
        if others.size == 0:
            return []
        chosen = rng.choice(others, size=min(talkers, others.size), replace=False)
        return [self._pool[int(i)] for i in chosen]

    def _babble(self, utt: Utterance, talkers: int, size: int, sr: int, rng: np.random.Generator) -> np.ndarray:
        mixture = np.zeros(size, dtype=np.float64)
        for source in self._babble_talkers(utt, talkers, rng):
            voice = self._decode(source, sr)
            level = dsp.rms(voice)
            if level > 0:
                mixture += dsp.fit_length(voice / level, size, rng)
        return mixture.astype(np.float32)

    def _decode(self, utt: Utterance, sr: int) -> np.ndarray:
        key = f"{utt.id}@{sr}"
        if key in self._decoded:
            self._decoded.move_to_end(key)
            return self._decoded[key]
        samples = load_audio(utt, sr)
        self._decoded[key] = samples
        if len(self._decoded) > _DECODED_CACHE:
            self._decoded.popitem(last=False)
        return samples

    def _noise_file(self, path: Path, sr: int) -> np.ndarray:
        if path not in self._noise:
            self._noise[path] = load_file(path, sr)
        return self._noise[path]

    def _noise_digest(self, path: Path) -> str:
        if path not in self._noise_digests:
            self._noise_digests[path] = file_sha256(path)
        return self._noise_digests[path]


@dataclass(frozen=True)
class _Context:
    """The simulator's shared sources, seen from one utterance (the transforms' RenderContext)."""

    simulator: Simulator
    utterance: Utterance
    audio_key_of: AudioKey | None

    def noise_file(self, path: Path, sample_rate: int) -> np.ndarray:
        return self.simulator._noise_file(path, sample_rate)

    def noise_digest(self, path: Path) -> str:
        return self.simulator._noise_digest(path)

    def babble(self, talkers: int, size: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        return self.simulator._babble(self.utterance, talkers, size, sample_rate, rng)

    def babble_keys(self, talkers: int, rng: np.random.Generator) -> list[str]:
        assert self.audio_key_of is not None, "babble keys are asked for only when keying"
        return [self.audio_key_of(u) for u in self.simulator._babble_talkers(self.utterance, talkers, rng)]


def _words(text: str) -> list[int]:
    """Four 32-bit words of a stable hash (Python's hash() is salted per process)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def with_condition(utterances: Sequence[Utterance], name: str, tag: str) -> list[Utterance]:
    """The utterances as heard under condition ``name``: the condition becomes a tag."""
    return [replace(u, tags={**u.tags, tag: name}) for u in utterances]
