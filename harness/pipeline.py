"""The main job, as a library: manifest → backend → transcripts → scores → run directory.

``run`` transcribes (resuming from the cache) and scores; ``rescore`` re-slices or re-normalises
a finished run from its own files, without the backend or the manifest.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import platform
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from harness import __version__, redaction
from harness.backends.base import Backend, BackendInfo, Registry, Transcript, backend_info
from harness.conditions import CONDITION_TAG, Condition, Rendering, Simulator, with_condition
from harness.conditions.dsp import CodecUnavailable, codec
from harness.conditions.spec import Babble, Codec
from harness.config import MAX_CONFIDENCE, RunawayConfig, RunConfig, StatsConfig
from harness.data.audio import AudioError, load_audio
from harness.data.card import card_provenance
from harness.data.manifest import Manifest, Utterance, load_manifest
from harness.decide.history import record_run
from harness.decide.integrity import check_sealed, seal, unseal
from harness.errors import BackendUnavailable, InputError, Interrupted, TooManyFailures, format_validation_error
from harness.files import (
    RunPaths,
    check_metrics_schema,
    new_run_dir,
    open_run_dir,
    write_json,
    write_parquet,
    write_table,
    write_text,
    write_yaml,
)
from harness.reuse import ScoreStore, SliceChecks, frame_rows, new_token, score_key, stamp
from harness.scoring.align import JIWER_VERSION, SCORER_VERSION
from harness.scoring.normalisers import Normalizer, get_normalizer
from harness.stats.slices import (
    SliceSpec,
    check_slices,
    default_slices,
    drop_duplicate_dimensions,
    duplicate_dimensions,
)
from harness.transcribe.cache import TranscriptCache
from harness.transcribe.local import BatchCallback, StopRequested, TranscribeResult, transcribe_all
from harness.transcribe.throughput import Throughput, clip_seconds_by_id, is_remote, throughput
from harness.yamlfile import read_yaml

if TYPE_CHECKING:
    import pandas as pd  # imported where a run is scored or read back: a warm rerun does without it

    from harness.decide.findings import Verdict
    from harness.results import RunResult
    from harness.stats.discover import Discovery
    from harness.stats.power import Plan
    from harness.stats.records import Aggregates, ModelResult, NormalizerSensitivity, Summary

log = logging.getLogger(__name__)

AUDIO_PROBES = "audio-probes.json"  # beside the transcript cache: the manifest's audio files found whole


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
    normalizers: list[Normalizer]  # the headline's first, then those of the sensitivity view
    backend: Backend
    conditions: list[Condition]  # usable ones, the reference first; empty: the audio as recorded
    skipped: list[dict[str, str]]  # conditions this machine cannot render, with the reason

    @property
    def normalizer(self) -> Normalizer:
        return self.normalizers[0]

    @property
    def requests(self) -> int:
        return len(self.manifest.utterances) * max(1, len(self.conditions))


def prepare(config: RunConfig, registry: Registry | None = None) -> Prepared:
    probes = config.cache_path.parent / AUDIO_PROBES
    manifest = load_manifest(config.dataset, audio_roots=config.audio_roots, probes=probes)
    for warning in manifest.warnings[:10]:
        log.warning("%s", warning)
    if len(manifest.warnings) > 10:
        log.warning("... and %d more warnings (asrfair validate %s)", len(manifest.warnings) - 10, manifest.path)
    if config.conditions and CONDITION_TAG in manifest.tag_names:
        raise InputError(
            f"{manifest.path}: tag '{CONDITION_TAG}' clashes with the run's simulated conditions; rename the tag "
            "in the manifest (for example to recording_condition)"
        )
    slices = _checked_slices(config, manifest)
    normalizers = resolve_normalizers(configured_normalizers(config))
    try:
        backend = (registry or Registry.default()).create(config.backend.name, config.backend.options)
    except BackendUnavailable as exc:
        raise BackendUnavailable(f"{config.key('backend')}: {exc}") from None
    conditions, skipped = _usable_conditions(config, backend, manifest)
    return Prepared(config, manifest, slices, normalizers, backend, conditions, skipped)


def configured_normalizers(config: RunConfig) -> list[tuple[str, str]]:
    """(where it was given, spec): the config's headline normaliser, then ``stats.normalizers``."""
    compared = [(config.key(f"stats.normalizers[{i}]"), spec) for i, spec in enumerate(config.stats.normalizers)]
    return [(config.key("normalizer"), config.normalizer), *compared]


def resolve_normalizers(specs: Sequence[tuple[str, str]]) -> list[Normalizer]:
    """The headline normaliser, then each other one once (a repeat of the headline is dropped);
    an unknown one is an error naming where it was given."""
    chosen: list[Normalizer] = []
    for where, spec in specs:
        try:
            normalizer = get_normalizer(spec)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        if all((n.stamp, n.sha256) != (normalizer.stamp, normalizer.sha256) for n in chosen):
            chosen.append(normalizer)
    return chosen


def with_condition_dimension(slices: list[SliceSpec], reference: str) -> list[SliceSpec]:
    """Conditions are a slice dimension of their own, added when the slice file lacks it, with
    the reference condition as its reference group (and the rate model's baseline level)."""
    if any(tuple(s.by) == (CONDITION_TAG,) for s in slices):
        return slices
    return [*slices, SliceSpec(by=(CONDITION_TAG,), reference=reference)]


def _usable_conditions(
    config: RunConfig, backend: Backend, manifest: Manifest
) -> tuple[list[Condition], list[dict[str, str]]]:
    """Check each transform against the backend's sample rate; skip a codec this FFmpeg lacks."""
    conditions = config.conditions
    if not conditions:
        return [], []
    rate = backend.capabilities.sample_rate
    speakers = len({u.speaker for u in manifest.utterances if u.speaker})
    usable, skipped = [], []
    for i, condition in enumerate(conditions):
        reason = None
        for j, transform in enumerate(condition.transforms):
            top = transform.highest_hz()
            if top is not None and top >= rate / 2:
                raise InputError(
                    f"{config.key(f'conditions[{i}].transforms[{j}]')}: {top:g} Hz is at or above the Nyquist "
                    f"frequency ({rate / 2:g} Hz) of the {rate} Hz audio backend '{backend.name}' receives; lower it"
                )
            if isinstance(transform, Codec):
                try:
                    codec(np.zeros(rate // 10, dtype=np.float32), rate, transform.format, transform.bitrate_kbps)
                except CodecUnavailable as exc:
                    reason = f"conditions[{i}].transforms[{j}]: {exc}"
                except ValueError as exc:
                    raise InputError(f"{config.key(f'conditions[{i}].transforms[{j}]')}: {exc}") from None
            if isinstance(transform, Babble) and speakers < 2:
                log.warning(
                    "condition '%s': babble needs other speakers, but the manifest has %d; talkers are other clips "
                    "of the same speaker",
                    condition.name,
                    speakers,
                )
        if reason and i == 0:
            raise InputError(f"{config.key(reason)}; the first condition is the reference and cannot be skipped")
        if reason:
            log.warning("skipping condition '%s': %s", condition.name, reason)
            skipped.append({"name": condition.name, "reason": reason})
        else:
            usable.append(condition)
    if usable and any(c.transforms for c in usable) and not backend.capabilities.needs_audio:
        log.warning(
            "backend '%s' takes no decoded audio, so transforms are not applied: it hears every condition as "
            "recorded and sees only the condition's name (the stub plants effects from it)",
            backend.name,
        )
    return usable, skipped


def run(
    prepared: Prepared, *, on_batch: BatchCallback | None = None, stop: threading.Event | None = None
) -> RunOutcome:
    """Transcribe, score, write the run directory (see RunOutcome.raise_for_failures).

    Setting ``stop`` ends the run after the batch in flight (cached; :class:`Interrupted`), as does
    Ctrl-C at once. A stop asked for once the last batch is in finishes the run instead.
    """
    config = prepared.config
    paths = new_run_dir(config.output, config.name)
    try:
        return _run_into(prepared, paths, on_batch, stop)
    except (KeyboardInterrupt, StopRequested):
        state = "is scored but not in the run history" if paths.metrics.exists() else "is incomplete (no metrics.json)"
        raise Interrupted(
            f"interrupted: transcripts finished so far are cached in {config.cache_path}; {paths.root} {state}; "
            "rerun the same command to resume"
        ) from None


def _run_into(
    prepared: Prepared, paths: RunPaths, on_batch: BatchCallback | None, stop: threading.Event | None
) -> RunOutcome:
    config, backend = prepared.config, prepared.backend
    write_yaml(paths.config, config.resolved())
    cache = TranscriptCache(config.cache_path)
    rows: list[list[dict[str, Any]]] = []
    tables, transcribed, cached = [], 0, 0
    transcribe: Callable[..., TranscribeResult] = transcribe_all
    pool = None
    try:
        if config.execute.executor == "ray":
            from harness.transcribe.ray import RayPool  # imports ray: only for runs that use it

            pool = RayPool(config.backend, config.execute, backend)
            transcribe = pool.transcribe_all
        for rendering, utterances in _passes(prepared):
            result = transcribe(utterances, backend, cache, rendering=rendering, on_batch=on_batch, stop=stop)
            rows.append(frame_rows(utterances, result.transcripts, prepared.manifest.file_seconds))
            condition = None if rendering is None else rendering.condition.name
            tables.append(_transcript_columns(result.transcripts.values(), backend, result.from_cache, condition))
            transcribed += len(result.transcripts) - len(result.from_cache)
            cached += len(result.from_cache)
    finally:
        if pool is not None:
            pool.close()
        cache.close()
        backend.close()
    transcripts = {name: [value for table in tables for value in table[name]] for name in tables[0]}
    write_table(paths.transcripts, transcripts, _transcript_types(CONDITION_TAG in tables[0]))
    provenance = _provenance(config, prepared.manifest, backend)
    provenance["conditions_skipped"] = prepared.skipped
    metrics = _scores(paths, rows, prepared, provenance, transcripts)
    record_run(config.history_path, paths.root, metrics)
    return RunOutcome(paths, metrics, transcribed, cached, config.max_failure_rate)


def _scores(
    paths: RunPaths,
    rows: list[list[dict[str, Any]]],
    prepared: Prepared,
    provenance: dict[str, Any],
    transcripts: Mapping[str, list[Any]],
) -> dict[str, Any]:
    """Score the run into its directory, or reuse a stored scoring whose inputs are all the same
    (:mod:`harness.reuse`); either way the files come from the stored scoring, stamped alike."""
    config = prepared.config
    inputs = {
        "slices": [s.model_dump(mode="json") for s in prepared.slices],
        "scoring": _scoring_provenance(prepared.normalizers),
    }
    key = score_key(rows, provenance, inputs, paths.root.parent)
    store = ScoreStore(config.cache_path)
    created = provenance["created_utc"]
    metrics = store.restore(key, paths.root, created)
    if metrics is None:
        metrics = _score_fresh(paths, rows, prepared, provenance, store, key)
    return _with_throughput(paths, rows, metrics, transcripts)


def _score_fresh(
    paths: RunPaths,
    rows: list[list[dict[str, Any]]],
    prepared: Prepared,
    provenance: dict[str, Any],
    store: ScoreStore,
    key: str,
) -> dict[str, Any]:
    config = prepared.config
    created = provenance["created_utc"]
    import pandas as pd

    token = new_token()
    frame = pd.concat([pd.DataFrame(pass_rows) for pass_rows in rows], ignore_index=True)
    placeheld = {**provenance, "created_utc": token}

    def score_into(folder: Path) -> None:
        _score_and_write(RunPaths(folder), frame, prepared.slices, prepared.normalizers, config, placeheld, paths.root)

    return stamp(paths.root, store.score(key, token, score_into), token, created)


def _with_throughput(
    paths: RunPaths, rows: list[list[dict[str, Any]]], metrics: dict[str, Any], transcripts: Mapping[str, list[Any]]
) -> dict[str, Any]:
    """This run's own RTFx (what it transcribed, not what the cache served) in metrics.json. It is
    added after the stored scoring is restored, because it is the one figure a rerun does not share.
    ``transcripts``: the columns just written to transcripts.parquet (not read back)."""
    every = [row for pass_rows in rows for row in pass_rows]
    seconds = clip_seconds_by_id((row["id"] for row in every), (row["audio_s"] for row in every))
    remote = bool(metrics["provenance"].get("backend", {}).get("remote"))
    measured = throughput(transcripts, seconds, remote=remote)
    found = asdict(measured) if measured is not None else None
    if found is None or metrics.get("throughput") == found:
        return metrics
    metrics = {**metrics, "throughput": found}
    unseal(paths.root)
    write_json(paths.metrics, metrics)
    seal(paths.root)
    return metrics


@dataclass(frozen=True)
class Audition:
    samples: np.ndarray
    sample_rate: int
    condition: Condition
    utterance: Utterance


def audition(config: RunConfig, condition_name: str, utterance_id: str, registry: Registry | None = None) -> Audition:
    """The samples the backend hears for one utterance under one condition, as a run renders them."""
    names = [c.name for c in config.conditions]
    if condition_name not in names:
        close = difflib.get_close_matches(condition_name, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise InputError(
            f"no condition '{condition_name}' in the config; {hint}conditions: {', '.join(names) or 'none'}"
        )
    manifest = load_manifest(config.dataset, audio_roots=config.audio_roots)
    by_id = {u.id: u for u in manifest.utterances}
    if utterance_id not in by_id:
        close = difflib.get_close_matches(utterance_id, list(by_id), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise InputError(f"{manifest.path}: no utterance with id '{utterance_id}'{hint}")
    condition = config.conditions[names.index(condition_name)]
    backend = (registry or Registry.default()).create(config.backend.name, config.backend.options)
    rate = backend.capabilities.sample_rate  # what the run would feed it
    backend.close()
    _, skipped = _usable_conditions(config, backend, manifest)  # the run's checks, same errors
    for entry in skipped:
        if entry["name"] == condition_name:
            raise InputError(f"condition '{condition_name}' cannot be rendered here: {entry['reason']}")
    utt = by_id[utterance_id]
    try:
        samples = Simulator(manifest.utterances, config.seed, rate).render(condition, utt, load_audio(utt, rate), rate)
    except (AudioError, OSError, ValueError) as exc:
        raise InputError(f"{utt.audio}: cannot render '{utterance_id}' under '{condition_name}': {exc}") from None
    return Audition(samples, rate, condition, utt)


def _passes(prepared: Prepared) -> list[tuple[Rendering | None, list[Utterance]]]:
    """One pass over the manifest per condition (just one, as recorded, without conditions)."""
    utterances = prepared.manifest.utterances
    if not prepared.conditions:
        return [(None, list(utterances))]
    simulator = Simulator(utterances, prepared.config.seed, prepared.backend.capabilities.sample_rate)
    return [
        (simulator.bind(condition), with_condition(utterances, condition.name, CONDITION_TAG))
        for condition in prepared.conditions
    ]


def rescore(
    run_dir: Path,
    *,
    slices: list[SliceSpec] | None = None,
    normalizers: Sequence[str] | None = None,
    aggregate: str | None = None,
) -> dict[str, Any]:
    """Re-slice, re-normalise and/or change the headline aggregate of a finished run from its own
    files; rewrite its reports. ``normalizers``: the headline's first, then any to compare with
    it (one alone keeps the config's ``stats.normalizers`` for comparison)."""
    from harness.scoring.table import tag_columns
    from harness.stats.by_slice import AGGREGATES

    paths, config, frame = _open_finished(run_dir)
    if aggregate is not None:
        if aggregate not in AGGREGATES:
            raise InputError(f"--aggregate {aggregate}: not an aggregate; choose one of {', '.join(AGGREGATES)}")
        config = config.model_copy(update={"stats": config.stats.model_copy(update={"aggregate": aggregate})})
    specs = _run_slices(config, frame, slices)
    check_slices(specs, frame, [*tag_columns(frame), "language"], str(run_dir))
    configured = configured_normalizers(config)
    given = [("--normalizer", spec) for spec in normalizers or []]
    if len(given) == 1:  # a new headline; the config's comparisons stay
        given += configured[1:]
    chosen = resolve_normalizers(given or configured)
    provenance = {**_last_provenance(paths), "rescored_utc": _now(), "harness_version": __version__}
    if "fingerprint" in provenance.get("backend", {}):  # runs scored before these fields existed gain them
        backend = provenance["backend"]
        info = backend_info(backend["fingerprint"], Backend.default_model)
        provenance["backend"] = {
            **_provenance_block(backend["name"], backend["id"], info, backend["fingerprint"]),
            "remote": bool(backend.get("remote")),
        }
    manifest = Path(provenance["manifest"]["path"])
    if "dataset_card" not in provenance and manifest.is_file():  # runs made before the card was kept
        try:
            provenance["dataset_card"] = card_provenance(manifest)
        except InputError as exc:  # the scores do not depend on the card: rescore without its caveats
            log.warning("%s; the reports carry no dataset caveats", exc)
    metrics = _score_and_write(paths, frame, specs, chosen, config, provenance)
    record_run(config.history_path, paths.root, metrics)  # replaces the run's rows
    return metrics


# What scoring reads from a run directory; metrics.json last, so an interrupted copy looks unfinished.
RESCORE_INPUTS = ("config.yaml", "transcripts.parquet", "utterances.parquet", "provenance.json", "discovery.json")


def copy_for_rescore(run_dir: Path, output: Path | None = None) -> Path:
    """A new run directory (``output``, else ``<run>-rescored-<UTC>`` beside ``run_dir``) holding
    what scoring reads from the finished run, for :func:`rescore` to score into: the scored run,
    its files and its history row stay as they were."""
    paths = open_run_dir(run_dir)
    check_sealed(paths.root)  # copy nothing that changed since scoring wrote it
    if output is None:
        target = new_run_dir(run_dir.parent, f"{run_dir.resolve().name}-rescored").root
    else:
        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise InputError(f"--output {output}: exists and is not an empty folder; name a new directory")
        if output.resolve() == run_dir.resolve():
            raise InputError(f"--output {output}: the scored run itself; pass --in-place to rewrite it")
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--output {output}: cannot create it ({exc.strerror}); choose another") from None
        target = output
    for name in (*RESCORE_INPUTS, "metrics.json"):
        if (paths.root / name).is_file():
            shutil.copy2(paths.root / name, target / name)
    return target


def _last_provenance(paths: RunPaths) -> dict[str, Any]:
    """What produced the run, as its last scoring recorded it: metrics.json's block, else
    provenance.json (written before the reports and metrics.json, so an interrupted scoring has it)."""
    for source, read in ((paths.metrics, lambda d: d.get("provenance")), (paths.provenance, lambda d: d)):
        try:
            found = read(json.loads(source.read_text(encoding="utf-8")))
        except FileNotFoundError:
            continue
        except (OSError, json.JSONDecodeError, AttributeError) as exc:
            log.warning("%s is unreadable (%s); trying the next record of the run's provenance", source, exc)
            continue
        if isinstance(found, dict) and "manifest" in found and "backend" in found:
            return found
    raise InputError(
        f"{paths.root}: neither metrics.json nor provenance.json says what produced this run; "
        "rerun the 'asrfair run' command that made it (its transcripts are cached)"
    )


def fit_model(run_dir: Path, *, factors: list[str] | None = None, slices: list[SliceSpec] | None = None) -> ModelResult:
    """The rate model on a finished run's scored utterances (as written by its last scoring)."""
    from harness.scoring.table import tag_columns
    from harness.stats.rate_model import model_for_slices

    _paths, config, table = _open_finished(run_dir)
    specs = _run_slices(config, table, slices)
    twice = sorted({f for f in factors or [] if (factors or []).count(f) > 1})
    if twice:
        raise InputError(f"--factors: {', '.join(twice)} named twice; name each factor once")
    unknown = sorted(set(factors or []) - set(tag_columns(table)))
    if unknown:
        tags = ", ".join(tag_columns(table))
        raise InputError(f"{run_dir}: --factors {', '.join(unknown)} are not tags of this run ({tags})")
    stats = config.stats
    return model_for_slices(table, specs, factors or stats.model_factors, stats.confidence, stats.model_max_levels)


def plan_run(
    run_dir: Path,
    *,
    gap: float,
    power: float | None = None,
    alpha: float | None = None,
    utts_per_speaker: float | None = None,
    slices: list[SliceSpec] | None = None,
) -> Plan:
    """``asrfair plan``: speakers each slice of a finished run needs to detect ``gap``; power and
    α default to the run's ``stats.power`` and 1 - ``stats.confidence``. With simulated
    conditions the plan is made on the reference condition's rows."""
    from harness.scoring.table import tag_columns
    from harness.stats.power import plan

    _paths, config, table = _open_finished(run_dir)
    # lower ends where the arithmetic still holds: a gap of 1e-300 squares to 0, 1 - 1e-300 / 2 rounds to 1
    for name, value, within, shown in (
        ("--gap", gap, lambda v: 1e-4 <= v < 1, "in [0.0001, 1)"),
        ("--power", power, lambda v: 0.5 < v <= MAX_CONFIDENCE, f"in (0.5, {MAX_CONFIDENCE:g}]"),
        ("--alpha", alpha, lambda v: 1 - MAX_CONFIDENCE <= v < 0.5, f"in [{1 - MAX_CONFIDENCE:.0e}, 0.5)"),
    ):
        if value is not None and not within(value):
            raise InputError(f"{name} {value}: must lie {shown}")
    if utts_per_speaker is not None and not 1 <= utts_per_speaker < math.inf:  # NaN fails both
        raise InputError(f"--utts-per-speaker {utts_per_speaker}: must be at least 1")
    specs = _run_slices(config, table, slices)
    check_slices(specs, table, [*tag_columns(table), "language"], str(run_dir))
    if config.conditions and CONDITION_TAG in table.columns:
        # Recorded speech is planned as recorded: the reference condition's rows, each utterance
        # once. Simulated conditions are paired copies of the same speakers, not more speakers.
        table = table[table[CONDITION_TAG] == config.conditions[0].name]
        specs = [s for s in specs if CONDITION_TAG not in s.by]
    return plan(
        table,
        specs,
        gap=gap,
        power=power or config.stats.power,
        alpha=alpha or 1 - config.stats.confidence,
        utts_per_speaker=utts_per_speaker,
        min_speakers=config.stats.min_speakers,
    )


def discover_run(
    run_dir: Path,
    *,
    out: Path | None = None,
    depth: int = 3,
    fdr: float = 0.05,
    min_speakers: int | None = None,
    min_words: int | None = None,
    seed: int | None = None,
    tags: list[str] | None = None,
) -> tuple[Discovery, list[Path]]:
    """``asrfair discover``: search the run for under-served subgroups; write discovery.json, one
    finding file per confirmed subgroup under ``out`` (default: RUN_DIR/findings), and the reports
    again with the ranked table. Thresholds and seed default to the run's ``stats``."""
    from harness.decide.findings import discovery_block, write_finding
    from harness.stats.discover import DiscoverOptions, discover, discovery_tags

    paths, config, table = _open_finished(run_dir)
    if not 1 <= depth <= 4:
        raise InputError(f"--depth {depth}: search conjunctions of 1 to 4 tags")
    if not 0 < fdr < 1:
        raise InputError(f"--fdr {fdr}: must lie strictly between 0 and 1")
    if seed is not None and seed < 0:
        raise InputError(f"--seed {seed}: must be 0 or more")
    rows = recorded_rows(table, config)
    searchable = discovery_tags(rows, None)
    unknown = sorted(set(tags or []) - set(searchable))
    if unknown:
        raise InputError(
            f"{run_dir}: --tags {', '.join(unknown)} are not tags of this run with two or more values "
            f"(searchable: {', '.join(searchable) or 'none'})"
        )
    stats = config.stats
    speakers = stats.min_speakers if min_speakers is None else min_speakers
    words = stats.min_words if min_words is None else min_words
    if speakers < 2 or words < 1:
        raise InputError(
            f"--min-speakers {speakers} / --min-words {words}: a subgroup needs at least 2 speakers (one speaker has "
            "no spread of its own to test) and 1 word"
        )
    options = DiscoverOptions(
        depth=depth,
        min_speakers=speakers,
        min_words=words,
        fdr=fdr,
        alpha=round(1 - stats.confidence, 12),
        confidence=stats.confidence,
        bootstrap=stats.bootstrap,
        seed=stats.seed if seed is None else seed,
        tags=tuple(tags) if tags else None,
    )
    result = discover(rows, options)
    metrics = _read_metrics(paths, run_dir)
    block = discovery_block(result, metrics["provenance"])
    write_json(paths.discovery, block)
    folder = out or paths.root / "findings"
    if out is None:  # the run's own folder holds this search's findings only
        for old in folder.glob("finding-*.yaml"):
            old.unlink()
    written = [
        write_finding(folder, finding, result, metrics["provenance"], i) for i, finding in enumerate(result.findings, 1)
    ]
    specs = _scored_slices(metrics)
    from harness.results import RunResult

    _write_reports(paths, RunResult.from_dict(metrics), table, specs, block)
    return result, written


def verify_finding(finding_path: Path, *, run_dir: Path | None = None, config: Path | None = None) -> Verdict:
    """``asrfair verify``: re-evaluate a finding file on a run (or on a config, run first)."""
    from harness.config import load_config
    from harness.decide.findings import read_finding, verify

    finding = read_finding(finding_path)
    if (run_dir is None) == (config is None):
        raise InputError("verify: give exactly one of --run RUN_DIR or --config CONFIG")
    target = run_dir if run_dir is not None else run(prepare(load_config(config))).paths.root  # type: ignore[arg-type]
    paths, run_config, table = _open_finished(target)
    metrics = _read_metrics(paths, target, provenance_only=True)
    return verify(finding, recorded_rows(table, run_config), metrics["provenance"], target, finding_path)


def recorded_rows(table: pd.DataFrame, config: RunConfig) -> pd.DataFrame:
    """Each recorded utterance once: with simulated conditions, the reference condition's rows."""
    if config.conditions and CONDITION_TAG in table.columns:
        return table[table[CONDITION_TAG] == config.conditions[0].name].drop(columns=CONDITION_TAG)
    return table


def _read_metrics(paths: RunPaths, run_dir: Path, *, provenance_only: bool = False) -> dict[str, Any]:
    """The run's metrics.json; one whose statistics are rendered must have the current schema."""
    if not paths.metrics.exists():
        raise InputError(f"{run_dir}: no metrics.json: scoring was interrupted; {paths.completion_hint()}")
    try:
        metrics = json.loads(paths.metrics.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(
            f"{paths.metrics}: unreadable ({exc}); rerun 'asrfair score {run_dir}' to rebuild it"
        ) from None
    check_metrics_schema(metrics, paths.metrics, provenance_only=provenance_only)
    return metrics


def _scored_slices(metrics: dict[str, Any]) -> list[SliceSpec]:
    """The slices a run was last scored with, as its metrics.json records them."""
    return [SliceSpec.model_validate(s) for s in metrics["provenance"]["slices"]]


def _run_slices(config: RunConfig, frame: pd.DataFrame, slices: list[SliceSpec] | None) -> list[SliceSpec]:
    """The slices a finished run is (re)scored with: given ones, the config's, or one per tag."""
    from harness.scoring.table import tag_columns

    tags = [t for t in tag_columns(frame) if t != CONDITION_TAG or not config.conditions]
    specs = slices or config.slice_specs() or default_slices(tags)
    if config.conditions and CONDITION_TAG in frame.columns:
        specs = with_condition_dimension(specs, config.conditions[0].name)
    return _without_duplicates(specs, frame)


def _without_duplicates(specs: list[SliceSpec], rows: pd.DataFrame) -> list[SliceSpec]:
    """Dimensions that group the same utterances as another are left out, and the run says so."""
    kept, dropped = drop_duplicate_dimensions(specs, rows)
    for item in dropped:
        log.warning("%s", item.describe())
    return kept


def _checked_slices(config: RunConfig, manifest: Manifest) -> list[SliceSpec]:
    """The run's slice dimensions, checked against the manifest's tags (:func:`check_slices`), less
    those that group the same utterances as another (the run says which). A rerun whose slices and
    tags passed before takes the outcome from :class:`SliceChecks`."""
    tags = [*manifest.tag_names, "language"]
    slices = config.slice_specs() or default_slices(manifest.tag_names)
    rows = [{**u.tags, "language": u.language} for u in manifest.utterances]
    conditions = [c.name for c in config.conditions]
    if conditions:
        slices = with_condition_dimension(slices, conditions[0])
        tags.append(CONDITION_TAG)
    checks = SliceChecks(config.cache_path)
    key = checks.key([*(s.model_dump(mode="json") for s in slices), {"conditions": conditions}], tags, rows)
    dropped = checks.passed(key)
    if dropped is None or any(index >= len(slices) for index, _ in dropped):
        import pandas as pd

        frame = pd.DataFrame(rows)
        if conditions:
            frame = pd.concat([frame.assign(**{CONDITION_TAG: name}) for name in conditions], ignore_index=True)
        source = str(config.slices) if isinstance(config.slices, Path) else config.key("slices")
        check_slices(slices, frame, tags, source)
        dropped = [(i, item.describe()) for i, item in duplicate_dimensions(slices, frame).items()]
        checks.keep(key, dropped)
    for _, warning in dropped:
        log.warning("%s", warning)
    left = {index for index, _ in dropped}
    return [spec for i, spec in enumerate(slices) if i not in left]


def _open_finished(run_dir: Path) -> tuple[RunPaths, RunConfig, pd.DataFrame]:
    paths = open_run_dir(run_dir)
    check_sealed(paths.root)
    if not paths.utterances.is_file():
        raise InputError(f"{run_dir}: utterances.parquet missing; the run did not finish scoring")
    try:
        config = RunConfig.model_validate(read_yaml(paths.config, "run config"))
    except ValidationError as exc:
        raise InputError(f"{paths.config}: {format_validation_error(exc, model=RunConfig)}") from None
    import pandas as pd

    try:
        frame = pd.read_parquet(paths.utterances)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(f"{paths.utterances}: unreadable ({exc}); rerun 'asrfair run' to rebuild it") from None
    return paths, config, frame


@dataclass(frozen=True)
class Scored:
    """A per-utterance frame scored: the table utterances.parquet holds and the typed results
    (metrics.json's content is ``result.to_dict()``)."""

    table: pd.DataFrame
    result: RunResult

    @property
    def aggregates(self) -> Aggregates:
        return self.result.aggregates


def score_results(
    frame: pd.DataFrame,
    slices: Sequence[SliceSpec],
    normalizers: Sequence[Normalizer],
    stats: StatsConfig,
    runaway: RunawayConfig,
    configured: Sequence[Condition],
    provenance: dict[str, Any],
) -> Scored:
    """Score ``frame`` (utterance_frame's columns) under the headline normaliser (and each compared
    one) and compute every statistic of a run: the one path from a per-utterance table to results,
    shared by ``run``, ``rescore`` and :func:`harness.api.score_frame`."""
    from harness.results import build_result
    from harness.scoring.runaway import capped
    from harness.scoring.table import score_frame
    from harness.stats.degradation import degradation
    from harness.stats.rate_model import model_for_slices
    from harness.stats.robust import agreed_marks, headline_aggregates, robust_view, sanity_warnings

    rules = runaway.rules()
    table = score_frame(frame, normalizers[0], rules)
    options = stats.options()
    present = set(table[CONDITION_TAG].unique()) if CONDITION_TAG in table.columns else set()
    conditions = [c for c in configured if c.name in present]
    reference = conditions[0].name if conditions else None
    aggregates, headline_specs, scope = headline_aggregates(table, slices, options, reference)
    capped_table = capped(table)
    names, descriptions = [c.name for c in conditions], {c.name: c.describe() for c in conditions}
    changes = degradation(table, slices, names, descriptions, options)
    capped_changes = degradation(capped_table, slices, names, descriptions, options) if changes else None
    robust = robust_view(
        table,
        headline_specs,
        aggregates.headline,
        headline_aggregates(capped_table, slices, options, reference)[0].headline,
        rules,
        scope,
        reference,
        (changes, capped_changes) if changes and capped_changes else None,
    )
    if changes and capped_changes:
        changes = agreed_marks(changes, capped_changes)
    warnings = sanity_warnings(robust, table, aggregates.headline, changes)  # every report shows them
    provenance = {
        **provenance,
        **_scoring_provenance(normalizers),
        "counts": _counts(table, aggregates.headline, len(conditions)),
        "slices": [s.model_dump(mode="json", exclude_defaults=True) for s in slices],
    }
    sensitivity = _sensitivity(frame, table, aggregates.headline, headline_specs, normalizers, stats, runaway)
    model = (
        model_for_slices(table, slices, stats.model_factors, stats.confidence, stats.model_max_levels)
        if stats.model == "poisson-gee"
        else None
    )
    # throughput: a run's own measurement, filled in where it transcribed (_score_and_write, _with_throughput)
    return Scored(table, build_result(aggregates, table, provenance, model, changes, sensitivity, robust, warnings))


def _score_and_write(
    paths: RunPaths,
    frame: pd.DataFrame,
    slices: Sequence[SliceSpec],
    normalizers: Sequence[Normalizer],
    config: RunConfig,
    provenance: dict[str, Any],
    report_dir: Path | None = None,
) -> dict[str, Any]:
    """Score (:func:`score_results`), then write utterances.parquet, provenance.json, the reports
    and, last, metrics.json. A re-score first removes the old metrics.json, so an interrupted one
    never leaves a directory that looks finished.
    ``report_dir``: where the report will be read from (its audio links), if not ``paths.root``."""
    from harness.decide.findings import current_discovery

    paths.metrics.unlink(missing_ok=True)
    scored = score_results(frame, slices, normalizers, config.stats, config.runaway, config.conditions, provenance)
    # None in a staging folder (no transcripts)
    result = replace(scored.result, throughput=_throughput(paths, frame, provenance))
    table, metrics = scored.table, result.to_dict()
    unseal(paths.root)
    write_parquet(paths.utterances, table)
    write_json(paths.provenance, metrics["provenance"])
    found = current_discovery(paths.discovery, metrics["provenance"])  # a stale one is left out, not lost
    _write_reports(paths, result, table, slices, found, report_dir)
    write_json(paths.metrics, metrics)  # last: a directory without it was interrupted, never taken as done
    seal(paths.root)
    return metrics


def _write_reports(
    paths: RunPaths,
    result: RunResult,
    table: pd.DataFrame,
    slices: Sequence[SliceSpec],
    discovery: dict[str, Any] | None,
    report_dir: Path | None = None,
) -> None:
    """report.md and report.html of a scored run: the one place a run's reports are written.
    ``report_dir``: where report.html will be read from (its audio links), if not ``paths.root``."""
    from harness.report.html import render_html
    from harness.report.markdown import render_markdown

    write_text(paths.report_md, render_markdown(result, discovery=discovery))
    page = render_html(result, table, slices, report_dir=report_dir or paths.root, discovery=discovery)
    write_text(paths.report_html, page)


def report(run_dir: Path, *, out: Path | None = None, compare: Path | None = None, force: bool = False) -> Path:
    """``asrfair report``: the HTML page of a finished run, optionally beside another run
    (paired on shared utterances), written to ``out`` (default: the run's report.html)."""
    from harness.decide.findings import current_discovery
    from harness.decide.gate import compare_sides
    from harness.report.html import render_html
    from harness.results import RunResult

    paths, _config, table = _open_finished(run_dir)
    metrics = _read_metrics(paths, run_dir)
    specs = _scored_slices(metrics)
    comparison = compare_sides(compare, run_dir, force=force) if compare is not None else None
    target = out or paths.report_html
    target.parent.mkdir(parents=True, exist_ok=True)
    found = current_discovery(paths.discovery, metrics["provenance"])
    page = render_html(
        RunResult.from_dict(metrics),
        table,
        specs,
        report_dir=target.parent.resolve(),
        comparison=comparison,
        discovery=found,
    )
    write_text(target, page)
    return target


def _throughput(paths: RunPaths, frame: pd.DataFrame, provenance: dict[str, Any]) -> Throughput | None:
    """RTFx of what a finished run transcribed (docs/metrics.md), from its transcripts.parquet;
    None where that is gone."""
    import pandas as pd

    try:
        transcripts = pd.read_parquet(paths.transcripts, columns=["id", "status", "latency_s", "cached"])
    except (OSError, ValueError):
        return None
    if "audio_s" not in frame:  # scored before clip lengths were kept
        return None
    remote = bool(provenance.get("backend", {}).get("remote"))
    return throughput(transcripts, clip_seconds_by_id(frame["id"], frame["audio_s"]), remote=remote)


_TRANSCRIPT_COLUMNS = ("id", "backend", "backend_id", "status", "text", "error", "latency_s", "cached")


def _transcript_columns(
    transcripts: Iterable[Transcript], backend: Backend, from_cache: frozenset[str], condition: str | None
) -> dict[str, list[Any]]:
    """One pass's transcripts.parquet columns (``condition`` second, with simulated conditions)."""
    fingerprint = backend.fingerprint_id()
    listed = list(transcripts)
    columns: dict[str, list[Any]] = {"id": [t.id for t in listed]}
    if condition is not None:
        columns[CONDITION_TAG] = [condition] * len(listed)
    columns |= {
        "backend": [backend.name] * len(listed),
        "backend_id": [fingerprint] * len(listed),
        "status": [t.status for t in listed],
        "text": [t.text for t in listed],
        "error": [t.error for t in listed],
        "latency_s": [t.latency_s for t in listed],
        "cached": [t.id in from_cache for t in listed],
    }
    return columns


def _transcript_types(with_condition: bool) -> dict[str, str]:
    """transcripts.parquet's columns and their types (text unless said)."""
    typed = {"latency_s": "DOUBLE", "cached": "BOOLEAN"}
    names = [*_TRANSCRIPT_COLUMNS[:1], *([CONDITION_TAG] if with_condition else []), *_TRANSCRIPT_COLUMNS[1:]]
    return {name: typed.get(name, "VARCHAR") for name in names}


def _sensitivity(
    frame: pd.DataFrame,
    table: pd.DataFrame,
    headline: Summary,
    slices: Sequence[SliceSpec],
    normalizers: Sequence[Normalizer],
    stats: StatsConfig,
    runaway: RunawayConfig,
) -> NormalizerSensitivity | None:
    """The run under each compared normaliser, beside the headline's (None when there is none).
    Each view reuses the headline's bootstrap seed, so only the normaliser differs."""
    from harness.scoring.table import score_frame
    from harness.stats.by_slice import summarise
    from harness.stats.normaliser_sensitivity import ScoredView, normalizer_sensitivity

    if len(normalizers) < 2:
        return None
    options = stats.options()
    views = [ScoredView(normalizers[0].stamp, table, headline)]
    for normalizer in normalizers[1:]:
        scored = score_frame(frame, normalizer, runaway.rules())
        views.append(ScoredView(normalizer.stamp, scored, summarise(scored, slices, options)))
    return normalizer_sensitivity(
        views,
        slices,
        wer_threshold=stats.normalizer_wer_threshold,
        rank_change=stats.normalizer_rank_change,
    )


def _scoring_provenance(normalizers: Sequence[Normalizer]) -> dict[str, Any]:
    """What turned transcripts into numbers: the normaliser(s) and the scorer."""
    return {
        "normalizer": normalizers[0].stamp,
        "normalizer_definition": normalizers[0].provenance(),
        "normalizers_compared": [n.provenance() for n in normalizers[1:]],
        "scorer_version": SCORER_VERSION,
        "scorer": {"name": "jiwer", "version": JIWER_VERSION, "alignment": SCORER_VERSION},
    }


def _counts(table: pd.DataFrame, headline: Summary, conditions: int) -> dict[str, Any]:
    """Rows before and after each dimension's filters, and how many failed."""
    failed = int((table["status"] != "ok").sum())
    return {
        "rows": len(table),
        "conditions": conditions,
        "scored": len(table) - failed,
        "failed": failed,
        "dimensions": {d.name: {"kept": sum(s.utterances + s.failed for s in d.slices)} for d in headline.dimensions},
    }


def _provenance(config: RunConfig, manifest: Manifest, backend: Backend) -> dict[str, Any]:
    return {
        "run_name": config.name,
        "created_utc": _now(),
        "harness_version": __version__,
        "git_sha": _git_sha(),
        "manifest": {"path": str(manifest.path), "sha256": manifest.sha256, "utterances": len(manifest.utterances)},
        "dataset_card": card_provenance(manifest.path),
        "backend": {**_backend_provenance(backend), "remote": is_remote(backend)},
        "config": config.resolved(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _backend_provenance(backend: Backend) -> dict[str, Any]:
    return _provenance_block(backend.name, backend.fingerprint_id(), backend.info(), backend.fingerprint())


def _provenance_block(name: str, fingerprint_id: str, info: BackendInfo, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The backend as it ran: model, revision and decoding options as every backend states them
    (credentials written into a URL or option masked: this is published in metrics, reports, history)."""
    block = {
        "name": name,
        "id": fingerprint_id,
        "model": info.model,
        "model_revision": info.model_revision,
        "decoding": info.decoding,
        "fingerprint": fingerprint,
    }
    return redaction.scrub(block)


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
