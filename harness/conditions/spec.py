"""What a user writes under ``conditions:``: named chains of audio transforms, validated.

Each transform is a pydantic model keyed by ``type``; unknown types, unknown keys and
out-of-range values are errors that name their YAML path (``conditions[1].transforms[0]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CONDITION_TAG = "condition"  # the slice dimension conditions become


class _Transform(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def highest_hz(self) -> float | None:
        """The highest frequency this transform names (checked against Nyquist), if any."""
        return None


class Noise(_Transform):
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


class Babble(_Transform):
    """Several other speakers of the manifest talking at once, at ``snr_db``."""

    type: Literal["babble"]
    snr_db: float = Field(ge=-20, le=80)
    talkers: int = Field(4, ge=1, le=32)


class Tone(_Transform):
    """A steady hum at ``freq_hz`` (equipment, mains), at ``snr_db``."""

    type: Literal["tone"]
    freq_hz: float = Field(gt=0)
    snr_db: float = Field(ge=-20, le=80)

    def highest_hz(self) -> float | None:
        return self.freq_hz


class Telephone(_Transform):
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


class Bandpass(_Transform):
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


class Lowpass(_Transform):
    type: Literal["lowpass"]
    cutoff_hz: float = Field(gt=0)

    def highest_hz(self) -> float | None:
        return self.cutoff_hz


class Highpass(_Transform):
    type: Literal["highpass"]
    cutoff_hz: float = Field(gt=0)

    def highest_hz(self) -> float | None:
        return self.cutoff_hz


class Clip(_Transform):
    """Clipping at the ``percentile`` of absolute amplitude (98: the loudest 2 % of samples clip)."""

    type: Literal["clip"]
    percentile: float = Field(gt=50, le=100)


class Gain(_Transform):
    type: Literal["gain"]
    db: float = Field(ge=-60, le=40)


class Reverb(_Transform):
    """A reverberant room: a synthetic impulse response decaying 60 dB in ``rt60_s``."""

    type: Literal["reverb"]
    rt60_s: float = Field(gt=0, le=5)


class Codec(_Transform):
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


Transform = Annotated[
    Noise | Babble | Tone | Telephone | Bandpass | Lowpass | Highpass | Clip | Gain | Reverb | Codec,
    Field(discriminator="type"),
]


class Condition(BaseModel):
    """A named listening condition; no transforms means the audio as recorded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    transforms: list[Transform] = Field(default_factory=list)

    def describe(self) -> str:
        """``tone 1000 Hz @ 10 dB + noise pink @ 20 dB``: for reports."""
        return " + ".join(_describe(t) for t in self.transforms) or "as recorded"


def _describe(t: _Transform) -> str:
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
