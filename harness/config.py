"""Run configuration: YAML in, a validated pydantic model out, every error naming file and key.

Input paths (``dataset``, ``slices``, ``audio_roots``) are resolved relative to the config file, so a config and
its manifest reproduce the same run from any working directory. ``output`` and ``cache`` are
relative to the working directory, where the user wants results to land.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from harness import redaction
from harness.conditions import Condition, check_conditions
from harness.data.manifest import usable_path
from harness.errors import InputError, format_validation_error
from harness.scoring.normalisers import is_normalizer_file
from harness.scoring.options import RunawayRules
from harness.stats.options import StatsOptions
from harness.stats.slices import SliceSpec, load_slices
from harness.yamlfile import read_yaml

CONFIG_VERSION = 1
# Resampling counts above this only exhaust memory (replicates × speakers floats).
MAX_RESAMPLES = 1_000_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # no threshold or level is NaN or infinite


class BackendSpec(BaseModel):
    """``{name: faster-whisper, model: tiny.en, ...}``: the name plus that backend's options."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# Every utterance is rendered, transcribed and scored under each condition: 2,000 looked like a hang.
MAX_CONDITIONS = 100
# 1 - (1 - c) / 2 rounds to 1.0 near 1 - 1e-16, and no normal quantile exists there.
MAX_CONFIDENCE = 0.999999


DEFAULTS = StatsOptions()


class StatsConfig(Strict):
    min_speakers: int = Field(
        DEFAULTS.min_speakers, ge=1, description="slices with fewer speakers are flagged, not ranked"
    )
    min_words: int = Field(
        DEFAULTS.min_words, ge=1, description="slices with fewer reference words are flagged, not ranked"
    )
    bootstrap: int = Field(
        DEFAULTS.bootstrap,
        ge=0,
        le=MAX_RESAMPLES,
        description="speaker bootstrap replicates of discover/compare (0: also no slice intervals)",
    )
    confidence: float = Field(
        DEFAULTS.confidence,
        gt=0.5,
        le=MAX_CONFIDENCE,
        description="interval level; 1 - confidence is the test level",
    )
    seed: int = Field(  # numpy: >= 0
        DEFAULTS.seed, ge=0, description="seed of the bootstrap streams (discover, compare, gate)"
    )
    permutations: int = Field(
        DEFAULTS.permutations,
        ge=0,
        le=MAX_RESAMPLES,
        description="0 switches the dimension tests off (they are analytic)",
    )
    aggregate: Literal["pooled", "speaker-mean", "utterance-mean"] = Field(
        DEFAULTS.aggregate, description="the headline aggregate; all three are always computed"
    )
    speaker_wer_threshold: float | None = Field(
        DEFAULTS.speaker_wer_threshold,
        ge=0,
        description="a speaker is badly served above this WER (default: 2 × the overall pooled WER)",
    )
    power: float = Field(
        DEFAULTS.power,
        gt=0.5,
        lt=1.0,
        description="power of each slice's minimum detectable gap (and of 'asrfair plan')",
    )
    model: Literal["poisson-gee", "none"] = Field("poisson-gee", description="model-based view of tag effects")
    model_factors: list[str] | None = Field(None, description="factors of the model (default: single-tag slices)")
    model_max_levels: int = Field(
        200, ge=1, description="skip the rate model (with a warning) above this many tag values in its factors"
    )

    @field_validator("model_factors")
    @classmethod
    def _factors_once(cls, value: list[str] | None) -> list[str] | None:
        twice = sorted({f for f in value or [] if (value or []).count(f) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} named twice; name each factor once")
        return value
    normalizers: list[str] = Field(
        default_factory=list, description="normalisers to score beside 'normalizer' (the sensitivity view)"
    )
    normalizer_wer_threshold: float = Field(
        0.02, ge=0, description="flag a slice whose WER moves this much more than its dimension's typical slice"
    )
    normalizer_rank_change: int = Field(
        2, ge=1, description="flag a slice whose rank moves this many places between normalisers"
    )

    def options(self) -> StatsOptions:
        return StatsOptions(**self.model_dump(exclude=_NOT_BOOTSTRAP_OPTIONS))


_NOT_BOOTSTRAP_OPTIONS = {
    "model",
    "model_factors",
    "model_max_levels",
    "normalizers",
    "normalizer_wer_threshold",
    "normalizer_rank_change",
}


class GateConfig(Strict):
    """Regression thresholds for ``asrfair gate``. A change fails a check only when it exceeds every
    threshold set for it (absolute and/or relative) and a paired speaker-level test says it is real."""

    wer_increase: float | None = Field(0.01, ge=0, description="overall WER rise (absolute; 0.01 = 1 pp)")
    wer_increase_relative: float | None = Field(None, ge=0, description="overall WER rise relative to the baseline")
    slice_wer_increase: float | None = Field(0.02, ge=0, description="a ranked slice's WER rise (absolute)")
    slice_wer_increase_relative: float | None = Field(None, ge=0, description="a slice's WER rise, relative")
    gap_increase: float | None = Field(0.02, ge=0, description="rise of a dimension's worst - best gap (absolute)")
    ratio_increase: float | None = Field(None, ge=0, description="rise of a dimension's worst / best ratio")
    failure_rate_increase: float | None = Field(0.01, ge=0, description="rise of the failed-utterance rate")
    max_failure_rate: float | None = Field(None, ge=0, le=1, description="the candidate's failure rate, at most")
    confidence: float = Field(
        0.95, gt=0.5, le=MAX_CONFIDENCE, description="family-wise: noise fails the gate at most 1 - this"
    )
    bootstrap: int = Field(
        1000, ge=0, le=MAX_RESAMPLES, description="paired speaker-clustered bootstrap replicates (intervals)"
    )
    flips: int = Field(
        2000, ge=100, le=MAX_RESAMPLES, description="random speaker swaps of the sign-flip test (decisions)"
    )
    seed: int = Field(0, ge=0, description="seed of the gate's bootstrap")  # numpy: >= 0
    untestable: Literal["warn", "fail"] = Field(
        "warn", description="a change beyond its threshold that too few speakers can test: warn, or fail the gate"
    )


class RunawayConfig(Strict):
    """Rules that flag an utterance's transcript as a runaway (harness/scoring/runaway.py, docs/config.md)."""

    loop_ngram: int = Field(8, ge=1, le=16, description="longest repeated unit a loop is looked for in, in words")
    loop_repeats: int = Field(4, ge=2, description="back-to-back copies of one unit that make a loop")
    max_length_ratio: float = Field(3.0, gt=0, description="length: hypothesis words > this × reference words + slack")
    length_slack: int = Field(5, ge=0, description="words added to the length rule's bound (short references)")
    max_words_per_second: float = Field(8.0, gt=0, description="rate: more hypothesis words per second of audio")
    flag_empty: bool = Field(True, description="empty: no hypothesis word on an utterance whose reference has words")
    mostly: float = Field(0.5, gt=0, lt=1, description="warn when more than this share is empty, or runaway")

    def rules(self) -> RunawayRules:
        return RunawayRules(**self.model_dump())


class ExecuteConfig(Strict):
    """Where transcription runs: in this process (default), or on a Ray cluster (docs/scaling.md)."""

    executor: Literal["local", "ray"] = "local"
    workers: int = Field(2, ge=1, le=4096, description="Ray actors (each loads the model once)")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs Ray reserves per actor")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs Ray reserves per actor (fractions share one)")
    address: str | None = Field(
        None, description="Ray cluster to join: auto, ray://host:10001, or none to start one on this machine"
    )
    max_restarts: int = Field(3, ge=0, le=100, description="times Ray restarts a dead actor before giving up on it")

    @model_validator(mode="after")
    def _ray_only(self) -> ExecuteConfig:
        if self.executor == "local" and self.address is not None:
            raise ValueError("address: only for executor: ray")
        return self


class RunConfig(Strict):
    version: int = CONFIG_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    dataset: Path
    audio_roots: list[Path] = Field(
        default_factory=list, description="folders outside the manifest's own that its audio may come from"
    )
    backend: BackendSpec
    normalizer: str = "whisper-english"
    slices: Path | list[SliceSpec] | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=MAX_CONDITIONS,
        description="listening conditions; every utterance is heard under each",
    )
    seed: int = Field(0, description="seed of simulated conditions (noise, babble talkers, rooms)")
    stats: StatsConfig = Field(default_factory=StatsConfig)
    max_failure_rate: float = Field(
        0.02, ge=0.0, le=1.0, description="fraction of utterances (all conditions) allowed to fail before exit 3"
    )
    output: Path = Path("runs")
    cache: Path | None = None
    history: Path | None = Field(None, description="run-history DuckDB file (default: <output>/history.duckdb)")
    gate: GateConfig = Field(default_factory=GateConfig)
    runaway: RunawayConfig = Field(default_factory=RunawayConfig)
    execute: ExecuteConfig = Field(default_factory=ExecuteConfig)

    @field_validator("output", "cache", "history")
    @classmethod
    def _usable(cls, value: Path | None) -> Path | None:
        if value is not None and not usable_path(str(value)):  # else mkdir fails mid-run
            raise ValueError(f"{str(value)!r} holds a NUL or a lone surrogate, which no file name can")
        return value

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if isinstance(self.slices, list) and not self.slices:
            raise ValueError("slices: [] defines no dimension; omit the key for one dimension per tag")
        check_conditions(self.conditions)
        if self.version != CONFIG_VERSION:
            raise ValueError(f"version {self.version} is not supported; this harness reads version {CONFIG_VERSION}")
        return self

    _source: Path | None = PrivateAttr(None)  # the YAML file it was read from

    def key(self, name: str) -> str:
        """How an error names one of its keys: ``run.yaml: 'normalizer'`` (``config 'normalizer'``
        for a config built in code)."""
        return f"{self._source}: '{name}'" if self._source else f"config '{name}'"

    @property
    def cache_path(self) -> Path:
        return self.cache or self.output / ".cache" / "transcripts.sqlite"

    @property
    def history_path(self) -> Path:
        return self.history or self.output / "history.duckdb"

    def slice_specs(self) -> list[SliceSpec] | None:
        if isinstance(self.slices, Path):
            return load_slices(self.slices)
        return self.slices

    def resolved(self) -> dict[str, Any]:
        """The config as it ran: absolute input paths, every default filled in, credentials masked."""
        data = self.model_dump(mode="json")
        data["backend"] = {"name": self.backend.name, **redaction.scrub(self.backend.options)}
        return data


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    path = Path(path)
    data = read_yaml(path, "config")
    if not isinstance(data, dict):
        raise InputError(f"{path}: a run config must be a YAML mapping (name:, dataset:, backend:, ...)")
    for key, value in (overrides or {}).items():  # a nested override (execute.workers) keeps its siblings
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    written = {key: data[key] for key in ("dataset", "slices") if isinstance(data.get(key), str)}
    for key, value in written.items():
        data[key] = str(_resolve(path, key, value))
    if isinstance(data.get("audio_roots"), list):
        data["audio_roots"] = [
            str(_resolve(path, f"audio_roots[{i}]", r)) if isinstance(r, str) else r
            for i, r in enumerate(data["audio_roots"])
        ]
    _resolve_normalizer_files(path, data)
    _resolve_noise_files(path, data.get("conditions"))
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: {format_validation_error(exc, model=RunConfig)}") from None
    except InputError as exc:  # raised by an included slice file
        raise InputError(f"{path}: {exc}") from None
    config._source = path
    _check_inputs_exist(path, written, config)
    return config


def _check_inputs_exist(path: Path, written: dict[str, str], config: RunConfig) -> None:
    """A missing manifest or slice file names what the config said and where that led: paths in a
    config are relative to the config file, not to the working directory."""
    for key, target in (("dataset", config.dataset), ("slices", config.slices)):
        if key in written and isinstance(target, Path) and not target.exists():
            raise InputError(
                f"{path}: '{key}': {written[key]} not found (looked for {target}); paths are relative to the "
                "config file"
            )


def _resolve(path: Path, key: str, value: str) -> Path:
    """``value`` relative to the config file ``path``; a name no OS path can hold is an InputError."""
    try:
        return (path.parent / value).resolve()
    except ValueError as exc:  # a NUL ('embedded null byte') or a lone surrogate
        raise InputError(f"{path}: '{key}': {value!r} is not a usable path ({exc}); fix the file name") from None


def _resolve_normalizer_files(path: Path, data: dict[str, Any]) -> None:
    """A normaliser given as a YAML file is an input: relative to the config file."""
    if isinstance(data.get("normalizer"), str) and is_normalizer_file(data["normalizer"]):
        data["normalizer"] = str(_resolve(path, "normalizer", data["normalizer"]))
    stats = data.get("stats")
    if isinstance(stats, dict) and isinstance(stats.get("normalizers"), list):
        stats["normalizers"] = [
            str(_resolve(path, f"stats.normalizers[{i}]", n)) if isinstance(n, str) and is_normalizer_file(n) else n
            for i, n in enumerate(stats["normalizers"])
        ]


def _resolve_noise_files(path: Path, conditions: Any) -> None:
    """Noise files are inputs: relative to the config file, and they must exist."""
    if not isinstance(conditions, list):
        return
    for i, condition in enumerate(conditions):
        transforms = condition.get("transforms") if isinstance(condition, dict) else None
        for j, transform in enumerate(transforms if isinstance(transforms, list) else []):
            if isinstance(transform, dict) and isinstance(transform.get("file"), str):
                resolved = _resolve(path, f"conditions[{i}].transforms[{j}].file", transform["file"])
                if not resolved.is_file():
                    raise InputError(
                        f"{path}: 'conditions[{i}].transforms[{j}].file': {transform['file']} not found "
                        f"(looked for {resolved}); paths are relative to the config file"
                    )
                transform["file"] = str(resolved)
