"""Run every system over every dataset through the ordinary pipeline (executors, transcript cache).

Each (system, dataset) is one ``asrfair run`` with its own run directory under the study's
``runs/``; the transcript cache is shared, so a rerun of a study only transcribes what is new (a
system or dataset added, a manifest edited). A system whose failures exceed ``max_failure_rate``
does not stop the others: every run is finished and scored first, and the study reports it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from harness.config import RunConfig
from harness.errors import BackendUnavailable, InputError, TooManyFailures, format_validation_error
from harness.pipeline import Prepared, prepare, run
from harness.stats.slices import SliceSpec
from harness.study.spec import DatasetSpec, StudySpec, SystemSpec
from harness.transcribe.local import BatchCallback
from harness.transcribe.throughput import Throughput, clip_seconds_by_id, throughput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SystemRun:
    """One system over one dataset: its scored utterances and where they came from."""

    system: str
    dataset: str
    run_dir: Path
    table: pd.DataFrame  # utterances.parquet: one scored row per utterance
    metrics: dict
    slices: list[SliceSpec]
    transcribed: int
    from_cache: int
    throughput: Throughput  # every transcript with its recorded time (cached ones too)
    failure: str | None = None  # failures beyond max_failure_rate


@dataclass(frozen=True)
class StudyRuns:
    runs: list[SystemRun]

    @property
    def transcribed(self) -> int:
        return sum(r.transcribed for r in self.runs)

    @property
    def from_cache(self) -> int:
        return sum(r.from_cache for r in self.runs)

    def of(self, dataset: str) -> list[SystemRun]:
        return [r for r in self.runs if r.dataset == dataset]


Announce = Callable[[str, str, int], None]  # (system, dataset, requests) as each run starts


def run_study(
    spec: StudySpec,
    out: Path,
    *,
    source: Path | None = None,
    announce: Announce | None = None,
    on_batch: BatchCallback | None = None,
    stop: threading.Event | None = None,
) -> StudyRuns:
    """Every system × dataset, in the study's order, run directories under ``out/runs``."""
    where = f"{source}: " if source else ""
    # Everything is checked before any model time is spent: a typo in the last system fails at once.
    planned = []
    for dataset in spec.datasets:
        for s, system in enumerate(spec.systems):
            config = _config(spec, system, dataset, out / "runs", where, s)
            try:
                planned.append((system, dataset, prepare(config)))
                _check_dimension(spec, dataset, planned[-1][2], where)
            except BackendUnavailable as exc:
                _close(planned)
                message = str(exc).removeprefix(f"{config.key('backend')}: ")
                raise BackendUnavailable(f"{where}'systems[{s}].backend': {message}") from None
            except BaseException:
                _close(planned)
                raise
    runs: list[SystemRun] = []
    for index, (system, dataset, prepared) in enumerate(planned):
        try:
            runs.append(_run_one(system, dataset, prepared, announce, on_batch, stop))
        except BaseException:  # interrupted or failed: the runs not started hold their backends
            _close(planned[index + 1 :])
            raise
    return StudyRuns(runs)


def _run_one(
    system: SystemSpec,
    dataset: DatasetSpec,
    prepared: Prepared,
    announce: Announce | None,
    on_batch: BatchCallback | None,
    stop: threading.Event | None,
) -> SystemRun:
    if announce:
        announce(system.label, dataset.name, prepared.requests)
    outcome = run(prepared, on_batch=on_batch, stop=stop)
    failure = None
    try:
        outcome.raise_for_failures()
    except TooManyFailures as exc:
        failure = str(exc)
    table = pd.read_parquet(outcome.paths.utterances)
    transcripts = pd.read_parquet(outcome.paths.transcripts)
    remote = bool(outcome.metrics["provenance"]["backend"].get("remote"))
    seconds = clip_seconds_by_id(table["id"], table["audio_s"])
    log.info("%s on %s: %d transcribed, %d from cache", system.label, dataset.name, outcome.transcribed,
             outcome.from_cache)
    return SystemRun(
        system=system.label,
        dataset=dataset.name,
        run_dir=outcome.paths.root,
        table=table,
        metrics=outcome.metrics,
        slices=prepared.slices,
        transcribed=outcome.transcribed,
        from_cache=outcome.from_cache,
        throughput=throughput(transcripts, seconds, remote=remote, include_cached=True),
        failure=failure,
    )


def _check_dimension(spec: StudySpec, dataset: DatasetSpec, prepared: Prepared, where: str) -> None:
    labels = [s.label for s in prepared.slices]
    if spec.dimension is not None and spec.dimension not in labels:
        raise InputError(
            f"{where}'dimension': {spec.dimension!r} is not a dimension of dataset {dataset.name!r}; "
            f"choose one of {', '.join(map(repr, labels))}"
        )


def _close(planned: list[tuple[SystemSpec, DatasetSpec, Prepared]]) -> None:
    for _, _, prepared in planned:
        prepared.backend.close()


def _config(
    spec: StudySpec, system: SystemSpec, dataset: DatasetSpec, output: Path, where: str, index: int
) -> RunConfig:
    try:
        return spec.run_config(system, dataset, output)
    except ValidationError as exc:
        raise InputError(f"{where}{format_validation_error(exc, f'systems[{index}]')}") from None
    except InputError as exc:
        raise InputError(f"{where}{exc}") from None
