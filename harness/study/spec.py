"""Study YAML → a validated :class:`StudySpec`, every error naming the file and key.

A study names its systems (a backend spec each, with a label) and datasets (a manifest each, with
its slices); everything else (normaliser, stats, failure allowance, output, cache) is shared, so
every system is scored by the same rules. Input paths resolve relative to the study file, output
and cache relative to the working directory (as in a run config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from harness.config import BackendSpec, ExecuteConfig, RunConfig, StatsConfig, Strict
from harness.errors import InputError, format_validation_error
from harness.stats.slices import SliceSpec
from harness.study import RankBy
from harness.yamlfile import read_yaml

STUDY_VERSION = 1
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class SystemSpec(Strict):
    label: str = Field(pattern=NAME, description="how tables and claims name the system")
    backend: BackendSpec
    price_per_audio_hour: float | None = Field(None, ge=0, description="cost per hour of audio, any currency")


class DatasetSpec(Strict):
    name: str = Field(pattern=NAME)
    manifest: Path
    slices: Path | list[SliceSpec] | None = None
    audio_roots: list[Path] = Field(default_factory=list)


class StudySpec(Strict):
    version: int = STUDY_VERSION
    name: str = Field(pattern=NAME)
    systems: list[SystemSpec] = Field(min_length=2, max_length=50)
    datasets: list[DatasetSpec] = Field(min_length=1, max_length=50)
    normalizer: str = "whisper-english"
    stats: StatsConfig = Field(default_factory=StatsConfig)
    rank_by: RankBy = "wer"
    dimension: str | None = Field(None, description="the dimension worst/gap rank by (default: each dataset's first)")
    currency: str = "USD"
    max_failure_rate: float = Field(0.02, ge=0.0, le=1.0)
    output: Path = Path("runs")
    cache: Path | None = None
    execute: ExecuteConfig = Field(default_factory=ExecuteConfig)  # local or Ray, for every run (docs/scaling.md)

    @model_validator(mode="after")
    def _check(self) -> StudySpec:
        if self.version != STUDY_VERSION:
            raise ValueError(f"version {self.version} is not supported; this harness reads version {STUDY_VERSION}")
        named = (("systems", [s.label for s in self.systems]), ("datasets", [d.name for d in self.datasets]))
        for field, names in named:
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{field}: {', '.join(repeated)} given twice; each needs its own name")
        return self

    @property
    def cache_path(self) -> Path:
        """Shared with ``asrfair run`` by default, so a study reuses single runs' transcripts."""
        return self.cache or self.output / ".cache" / "transcripts.sqlite"

    def run_config(self, system: SystemSpec, dataset: DatasetSpec, output: Path) -> RunConfig:
        """The single run of ``system`` over ``dataset``, as ``asrfair run`` would execute it."""
        data: dict[str, Any] = {
            "name": f"{self.name}-{dataset.name}-{system.label}",
            "dataset": dataset.manifest,
            "audio_roots": dataset.audio_roots,
            "backend": system.backend.model_dump(),
            "normalizer": self.normalizer,
            "slices": dataset.slices,
            "stats": self.stats.model_dump(),
            "max_failure_rate": self.max_failure_rate,
            "output": output,
            "cache": self.cache_path,
            "history": output / "history.duckdb",
            "execute": self.execute.model_dump(),
        }
        return RunConfig.model_validate(data)


def load_study(path: str | Path) -> StudySpec:
    path = Path(path)
    data = read_yaml(path, "study")
    if not isinstance(data, dict):
        raise InputError(f"{path}: a study must be a YAML mapping (name:, systems:, datasets:, ...)")
    for i, dataset in enumerate(data.get("datasets") or []):
        if not isinstance(dataset, dict):
            continue
        for key in ("manifest", "slices"):
            if isinstance(dataset.get(key), str):
                dataset[key] = str(_resolve(path, f"datasets[{i}].{key}", dataset[key]))
        if isinstance(dataset.get("audio_roots"), list):
            dataset["audio_roots"] = [
                str(_resolve(path, f"datasets[{i}].audio_roots[{j}]", r)) if isinstance(r, str) else r
                for j, r in enumerate(dataset["audio_roots"])
            ]
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: {format_validation_error(exc)}") from None
    except InputError as exc:  # an included slice file
        raise InputError(f"{path}: {exc}") from None
    for i, dataset in enumerate(spec.datasets):
        if not dataset.manifest.is_file():
            raise InputError(
                f"{path}: 'datasets[{i}].manifest': {dataset.manifest} not found; paths are relative to the study file"
            )
    return spec


def _resolve(path: Path, key: str, value: str) -> Path:
    try:
        return (path.parent / value).resolve()
    except ValueError as exc:
        raise InputError(f"{path}: '{key}': {value!r} is not a usable path ({exc}); fix the file name") from None
