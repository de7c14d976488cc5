"""What a user writes under ``conditions:``: named chains of audio transforms, validated.

One class per transform holds both its options (a pydantic model keyed by ``type``) and how it renders
(:meth:`AudioTransform.render`). Built-ins are listed in ``BUILTIN_TRANSFORMS``; another package adds one
through the ``asrfair.transforms`` entry point. Unknown types, unknown keys and out-of-range values are
errors that name their YAML path (``conditions[1].transforms[0]``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from harness.conditions import dsp
from harness.errors import InputError, format_validation_error
from harness.registry import PluginRegistry

if TYPE_CHECKING:
    import numpy as np

    from harness.data.manifest import Utterance

ENTRY_POINT_GROUP = "asrfair.transforms"

CONDITION_TAG = "condition"  # the slice dimension conditions become


class RenderContext(Protocol):
    """What a transform may use besides its own options: the utterance, and the simulator's shared,
    cached sources (noise files, other speakers' clips for babble)."""

    utterance: Utterance

    def noise_file(self, path: Path, sample_rate: int) -> np.ndarray: ...

    def noise_digest(self, path: Path) -> str: ...

    def babble(self, talkers: int, size: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray: ...

    def babble_keys(self, talkers: int, rng: np.random.Generator) -> list[str]: ...


class AudioTransform(BaseModel):
    """A last-mile transform: subclass it, give it a ``type: Literal["name"]`` and validated options, and
    implement :meth:`render` as a pure function of the samples and the seeded ``rng``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def highest_hz(self) -> float | None:
        """The highest frequency this transform names (checked against Nyquist), if any."""
        return None

    def render(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator, context: RenderContext
    ) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement render")

    def key_parts(self, context: RenderContext, rng: np.random.Generator) -> dict[str, Any]:
        """What changes the rendered audio besides the options (a file's content, an encoder's version)."""
        return {}



class Noise(AudioTransform):
    """Additive noise at ``snr_db``: coloured (white/pink/brown) or from a user ``file`` (looped)."""

    type: Literal["noise"]
    snr_db: float = Field(ge=-20, le=80)
    color: Literal["white", "pink", "brown"] | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Noise:
        if self.color is not None and self.file is not None:
            raise ValueError("give either color or file, not both")
        return self

    def render(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator, context: RenderContext
    ) -> np.ndarray:
        if self.file is None:
            noise = dsp.colored_noise(rng, samples.size, self.color or "white")
        else:
            noise = dsp.fit_length(context.noise_file(self.file, sample_rate), samples.size, rng)
        return dsp.mix_at_snr(samples, noise, self.snr_db)

    def key_parts(self, context: RenderContext, rng: np.random.Generator) -> dict[str, Any]:
        return {"file": context.noise_digest(self.file)} if self.file is not None else {}


class Babble(AudioTransform):
    """Several other speakers of the manifest talking at once, at ``snr_db``."""

    type: Literal["babble"]
    snr_db: float = Field(ge=-20, le=80)
    talkers: int = Field(4, ge=1, le=32)

    def render(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator, context: RenderContext
    ) -> np.ndarray:
        return dsp.mix_at_snr(samples, context.babble(self.talkers, samples.size, sample_rate, rng), self.snr_db)

    def key_parts(self, context: RenderContext, rng: np.random.Generator) -> dict[str, Any]:
        return {"talkers": context.babble_keys(self.talkers, rng)}


class Tone(AudioTransform):
    """A steady hum at ``freq_hz`` (equipment, mains), at ``snr_db``."""

    type: Literal["tone"]
    freq_hz: float = Field(gt=0)
    snr_db: float = Field(ge=-20, le=80)

    def highest_hz(self) -> float | None:
        return self.freq_hz

    def render(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator, context: RenderContext
    ) -> np.ndarray:
        tone = dsp.sine(samples.size, sample_rate, self.freq_hz, rng.uniform(0, 2 * math.pi))
        return dsp.mix_at_snr(samples, tone, self.snr_db)


class Telephone(AudioTransform):
    """A narrow-band phone line: 8 kHz, band-pass ``low_hz``–``high_hz``, 8-bit mu-law."""

    type: Literal["telephone"]
    low_hz: float = Field(300.0, gt=0)
    high_hz: float = Field(3400.0, lt=4000)
    mu_law: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> Telephone:
        if self.low_hz >= self.high_hz:
            raise ValueError(f"low_hz {self.low_hz} must be below high_hz {self.high_hz}")
        return self

    def render(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator, context: RenderContext
    ) -> np.ndarray:
        return dsp.telephone(samples, sample_rate, self.low_hz, self.high_hz, self.mu_law)


class Bandpass(AudioTransform):
    """A cheap microphone or loudspeaker: Butterworth band-pass (24 dB/octave)."""

    type: Literal["bandpass"]
    low_hz: float = Field(gt=0)
    high_hz: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Bandpass:
        if self.low_hz >= self.high_hz:
            raise ValueError(f"low_hz {self.low_hz} must be below high_hz {self.high_hz}")
        return self

    def highest_hz(self) -> float | None:
        return self.high_hz

    def render(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator, context: RenderContext
    ) -> np.ndarray:
        return dsp.bandpass(samples, sample_rate, self.low_hz, self.high_hz)


class Lowpass(AudioTransform):
    type: Literal["lowpass"]
    cutoff_hz: float = Field(gt=0)

    def highest_hz(self) -> float | None:
        return self.cutoff_hz

    def render(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator, context: RenderContext
    ) -> np.ndarray:
        return dsp.lowpass(samples, sample_rate, self.cutoff_hz)


class Highpass(AudioTransform):
    type: Literal["highpass"]
    cutoff_hz: float = Field(gt=0)

    def highest_hz(self) -> float | None:
        return self.cutoff_hz

    def render(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator, context: RenderContext
    ) -> np.ndarray:
        return dsp.highpass(samples, sample_rate, self.cutoff_hz)


class Clip(AudioTransform):
    """Clipping at the ``percentile`` of absolute amplitude (98: the loudest 2 % of samples clip)."""

    type: Literal["clip"]
    percentile: float = Field(gt=50, le=100)

    def render(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator, context: RenderContext
    ) -> np.ndarray:
        return dsp.clip(samples, self.percentile)


class Gain(AudioTransform):
    type: Literal["gain"]
    db: float = Field(ge=-60, le=40)

    def render(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator, context: RenderContext
    ) -> np.ndarray:
        return dsp.gain(samples, self.db)


class Reverb(AudioTransform):
    """A reverberant room: a synthetic impulse response decaying 60 dB in ``rt60_s``."""

    type: Literal["reverb"]
    rt60_s: float = Field(gt=0, le=5)

    def render(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator, context: RenderContext
    ) -> np.ndarray:
        return dsp.reverb(samples, sample_rate, self.rt60_s, rng)


class Codec(AudioTransform):
    """Lossy compression round trip (mp3 via LAME, opus via libopus) at ``bitrate_kbps``."""

    type: Literal["codec"]
    format: Literal["mp3", "opus"]
    bitrate_kbps: float = Field(32.0, ge=6, le=320)

    @model_validator(mode="after")
    def _in_range(self) -> Codec:
        if self.format == "opus" and self.bitrate_kbps > 256:
            raise ValueError(f"bitrate_kbps {self.bitrate_kbps:g}: opus encodes mono at 6–256 kbps")
        if self.format == "mp3" and self.bitrate_kbps < 8:
            raise ValueError(f"bitrate_kbps {self.bitrate_kbps:g}: mp3 encodes at 8–320 kbps")
        return self

    def render(
        self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator, context: RenderContext
    ) -> np.ndarray:
        return dsp.codec(samples, sample_rate, self.format, self.bitrate_kbps)

    def key_parts(self, context: RenderContext, rng: np.random.Generator) -> dict[str, Any]:
        import av  # the encoder's output changes with its version

        return {"encoder": av.__version__}


_BUILTIN_CLASSES = (Noise, Babble, Tone, Telephone, Bandpass, Lowpass, Highpass, Clip, Gain, Reverb, Codec)
BUILTIN_TRANSFORMS: dict[str, str] = {
    "noise": "harness.conditions.spec:Noise",
    "babble": "harness.conditions.spec:Babble",
    "tone": "harness.conditions.spec:Tone",
    "telephone": "harness.conditions.spec:Telephone",
    "bandpass": "harness.conditions.spec:Bandpass",
    "lowpass": "harness.conditions.spec:Lowpass",
    "highpass": "harness.conditions.spec:Highpass",
    "clip": "harness.conditions.spec:Clip",
    "gain": "harness.conditions.spec:Gain",
    "reverb": "harness.conditions.spec:Reverb",
    "codec": "harness.conditions.spec:Codec",
}


class TransformRegistry(PluginRegistry[AudioTransform]):
    kind = "transform"
    base = AudioTransform
    error = InputError

    @classmethod
    def default(cls) -> TransformRegistry:
        """Built-ins plus third-party transforms from the ``asrfair.transforms`` entry points."""
        return cls.with_entry_points(BUILTIN_TRANSFORMS, ENTRY_POINT_GROUP)  # type: ignore[return-value]


def _plugin_transform(item: Any) -> Any:
    """A transform of a type no built-in has becomes an instance of the class its entry point names."""
    kind = item.get("type") if isinstance(item, dict) else None
    if not isinstance(kind, str) or kind in BUILTIN_TRANSFORMS:
        return item  # built-ins (and malformed items) keep pydantic's own validation and messages
    try:
        cls = TransformRegistry.default().load(kind)
    except InputError as exc:  # unknown type: the message names the nearest one
        raise ValueError(str(exc)) from None
    try:
        return cls.model_validate(item)
    except ValidationError as exc:
        raise ValueError(f"{kind}: {format_validation_error(exc, model=cls)}") from None


def _tag(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type"))
    return value.type if isinstance(value, _BUILTIN_CLASSES) else "plugin"  # type: ignore[attr-defined]


# Built-ins are told apart by ``type`` (so an error names the transform: ``transforms[0].bandpass``);
# any other AudioTransform arrives already validated by its own class.
Transform = Annotated[
    Annotated[Noise, Tag("noise")]
    | Annotated[Babble, Tag("babble")]
    | Annotated[Tone, Tag("tone")]
    | Annotated[Telephone, Tag("telephone")]
    | Annotated[Bandpass, Tag("bandpass")]
    | Annotated[Lowpass, Tag("lowpass")]
    | Annotated[Highpass, Tag("highpass")]
    | Annotated[Clip, Tag("clip")]
    | Annotated[Gain, Tag("gain")]
    | Annotated[Reverb, Tag("reverb")]
    | Annotated[Codec, Tag("codec")]
    | Annotated[AudioTransform, Tag("plugin")],
    Discriminator(_tag),
    BeforeValidator(_plugin_transform),
]


class Condition(BaseModel):
    """A named listening condition; no transforms means the audio as recorded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    transforms: list[Transform] = Field(default_factory=list)

    def describe(self) -> str:
        """``tone 1000 Hz @ 10 dB + noise pink @ 20 dB``: for reports."""
        return " + ".join(_describe(t) for t in self.transforms) or "as recorded"


def _describe(t: AudioTransform) -> str:
    fields = t.model_dump(exclude={"type"}, exclude_none=True)
    shown = [
        f"{k}={Path(v).name if k == 'file' else format(v, 'g') if isinstance(v, float) else v}"
        for k, v in fields.items()
    ]
    return f"{t.type} " + ", ".join(shown)  # type: ignore[attr-defined]


def check_conditions(conditions: list[Condition]) -> None:
    """Names must be unique: they become slice values."""
    seen: set[str] = set()
    for index, condition in enumerate(conditions):
        if condition.name in seen:
            raise ValueError(f"conditions[{index}].name: '{condition.name}' is used twice; names must be unique")
        seen.add(condition.name)
