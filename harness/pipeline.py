"""The main job, as a library: manifest → backend → transcripts → scores → run directory.

``run`` transcribes (resuming from the cache) and scores; ``rescore`` re-slices or re-normalises
a finished run from its own files, without the backend or the manifest.
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from harness import __version__
from harness.align import SCORER_VERSION
from harness.backends.base import Backend, Registry, Transcript
from harness.config import RunConfig
from harness.errors import InputError, TooManyFailures, format_validation_error
from harness.execute import BatchCallback, transcribe_all
from harness.manifest import Manifest, load_manifest
from harness.model import ModelResult, model_for_slices
from harness.report.markdown import render_markdown
from harness.report.metrics import build_metrics
from harness.scoring import score_frame, tag_columns, utterance_frame
from harness.slices import SliceSpec, check_slices, default_slices
from harness.stats import summarise
from harness.store import (
    RunPaths,
    TranscriptCache,
    new_run_dir,
    open_run_dir,
    write_json,
    write_parquet,
    write_text,
    write_yaml,
)
from harness.text import Normalizer, get_normalizer
from harness.yamlfile import read_yaml

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    paths: RunPaths
    metrics: dict[str, Any]
    transcribed: int
    from_cache: int
    max_failure_rate: float

    def raise_for_failures(self) -> None:
        """Raise TooManyFailures (exit 3) when more utterances failed than the config allows."""
        failures = self.metrics["failures"]
        if failures["rate"] > self.max_failure_rate:
            raise TooManyFailures(
                f"{failures['count']} utterances failed ({failures['rate']:.1%} > max_failure_rate "
                f"{self.max_failure_rate:.1%}); results are in {self.paths.root}; rerun to retry the failures"
            )


@dataclass(frozen=True)
class Prepared:
    """Everything checked before any model time is spent."""

    config: RunConfig
    manifest: Manifest
    slices: list[SliceSpec]
    normalizer: Normalizer
    backend: Backend


def prepare(config: RunConfig, registry: Registry | None = None) -> Prepared:
    manifest = load_manifest(config.dataset)
    for warning in manifest.warnings[:10]:
        log.warning("%s", warning)
    if len(manifest.warnings) > 10:
        log.warning("... and %d more warnings (asrfair validate %s)", len(manifest.warnings) - 10, manifest.path)
    slices = config.slice_specs() or default_slices(manifest.tag_names)
    source = str(config.slices) if isinstance(config.slices, Path) else "config 'slices'"
    rows = pd.DataFrame([{**u.tags, "language": u.language} for u in manifest.utterances])
    check_slices(slices, rows, [*manifest.tag_names, "language"], source)
    normalizer = get_normalizer(config.normalizer)
    backend = (registry or Registry.default()).create(config.backend.name, config.backend.options)
    return Prepared(config, manifest, slices, normalizer, backend)


def run(prepared: Prepared, *, on_batch: BatchCallback | None = None) -> RunOutcome:
    """Transcribe, score, write the run directory (see RunOutcome.raise_for_failures)."""
    config, backend = prepared.config, prepared.backend
    paths = new_run_dir(config.output, config.name)
    write_yaml(paths.config, config.resolved())
    cache = TranscriptCache(config.cache_path)
    try:
        result = transcribe_all(prepared.manifest.utterances, backend, cache, on_batch=on_batch)
    finally:
        cache.close()
        backend.close()
    write_parquet(paths.transcripts, _transcript_table(result.transcripts.values(), backend, result.from_cache))
    frame = utterance_frame(prepared.manifest.utterances, result.transcripts)
    provenance = _provenance(config, prepared.manifest, backend, prepared.normalizer)
    metrics = _score_and_write(paths, frame, prepared.slices, prepared.normalizer, config, provenance)
    return RunOutcome(
        paths,
        metrics,
        len(result.transcripts) - len(result.from_cache),
        len(result.from_cache),
        config.max_failure_rate,
    )


def rescore(run_dir: Path, *, slices: list[SliceSpec] | None = None, normalizer: str | None = None) -> dict[str, Any]:
    """Re-slice and/or re-normalise a finished run from its own files; rewrite its reports."""
    paths, config, frame = _open_finished(run_dir)
    specs = slices or config.slice_specs() or default_slices(tag_columns(frame))
    check_slices(specs, frame, [*tag_columns(frame), "language"], str(run_dir))
    chosen = get_normalizer(normalizer or config.normalizer)
    try:
        old = json.loads(paths.metrics.read_text(encoding="utf-8")) if paths.metrics.is_file() else {}
    except json.JSONDecodeError:
        log.warning("%s is unreadable; its provenance is rebuilt from config.yaml only", paths.metrics)
        old = {"provenance": {"run_name": config.name, "config": config.resolved()}}
    provenance = {
        **old.get("provenance", {}),
        "normalizer": chosen.stamp,
        "rescored_utc": _now(),
        "scorer_version": SCORER_VERSION,
        "harness_version": __version__,
    }
    return _score_and_write(paths, frame, specs, chosen, config, provenance)


def fit_model(run_dir: Path, *, factors: list[str] | None = None, slices: list[SliceSpec] | None = None) -> ModelResult:
    """The rate model on a finished run's scored utterances (as written by its last scoring)."""
    _paths, config, table = _open_finished(run_dir)
    specs = slices or config.slice_specs() or default_slices(tag_columns(table))
    unknown = sorted(set(factors or []) - set(tag_columns(table)))
    if unknown:
        tags = ", ".join(tag_columns(table))
        raise InputError(f"{run_dir}: --factors {', '.join(unknown)} are not tags of this run ({tags})")
    return model_for_slices(table, specs, factors or config.stats.model_factors, config.stats.confidence)


def _open_finished(run_dir: Path) -> tuple[RunPaths, RunConfig, pd.DataFrame]:
    paths = open_run_dir(run_dir)
    if not paths.utterances.is_file():
        raise InputError(f"{run_dir}: utterances.parquet missing; the run did not finish scoring")
    try:
        config = RunConfig.model_validate(read_yaml(paths.config, "run config"))
    except ValidationError as exc:
        raise InputError(f"{paths.config}: {format_validation_error(exc)}") from None
    try:
        frame = pd.read_parquet(paths.utterances)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(f"{paths.utterances}: unreadable ({exc}); rerun 'asrfair run' to rebuild it") from None
    return paths, config, frame


def _score_and_write(
    paths: RunPaths,
    frame: pd.DataFrame,
    slices: Sequence[SliceSpec],
    normalizer: Normalizer,
    config: RunConfig,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    table = score_frame(frame, normalizer)
    summary = summarise(table, slices, config.stats.options())
    provenance = {**provenance, "slices": [s.model_dump(mode="json", exclude_defaults=True) for s in slices]}
    model = (
        model_for_slices(table, slices, config.stats.model_factors, config.stats.confidence)
        if config.stats.model == "poisson-gee"
        else None
    )
    metrics = build_metrics(summary, table, provenance, model)
    write_parquet(paths.utterances, table)
    write_json(paths.metrics, metrics)
    write_text(paths.report_md, render_markdown(metrics))
    return metrics


def _transcript_table(transcripts: Iterable[Transcript], backend: Backend, from_cache: frozenset[str]) -> pd.DataFrame:
    fingerprint = backend.fingerprint_id()
    return pd.DataFrame(
        [
            {
                "id": t.id,
                "backend": backend.name,
                "backend_id": fingerprint,
                "status": t.status,
                "text": t.text,
                "error": t.error,
                "latency_s": t.latency_s,
                "cached": t.id in from_cache,
            }
            for t in transcripts
        ],
        columns=["id", "backend", "backend_id", "status", "text", "error", "latency_s", "cached"],
    )


def _provenance(config: RunConfig, manifest: Manifest, backend: Backend, normalizer: Normalizer) -> dict[str, Any]:
    return {
        "run_name": config.name,
        "created_utc": _now(),
        "harness_version": __version__,
        "git_sha": _git_sha(),
        "scorer_version": SCORER_VERSION,
        "normalizer": normalizer.stamp,
        "manifest": {"path": str(manifest.path), "sha256": manifest.sha256, "utterances": len(manifest.utterances)},
        "backend": {"name": backend.name, "id": backend.fingerprint_id(), "fingerprint": backend.fingerprint()},
        "config": config.resolved(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _git_sha() -> str | None:
    """The harness checkout's commit, with ``+dirty`` when its files differ from it."""
    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
