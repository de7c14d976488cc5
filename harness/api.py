"""Score a pandas DataFrame of references, hypotheses and tags by slice, from a notebook.

``score_frame(df)`` is the run's scoring with the backend and the manifest taken away: the
frame becomes the per-utterance table ``asrfair run`` builds, and :func:`harness.pipeline.score_results`
(the code behind ``run`` and ``score``) computes every statistic, so the numbers are those the
CLI reports for the same utterances. docs/api.md walks through it.
"""

from __future__ import annotations

import hashlib
import logging
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from pydantic import BaseModel, ValidationError

from harness import __version__
from harness.errors import InputError, format_validation_error
from harness.results import RunResult
from harness.stats.by_slice import rankable
from harness.stats.records import Aggregates, Dimension, SliceStats
from harness.stats.slices import SliceSpec, check_slices, default_slices, drop_duplicate_dimensions, load_slices

log = logging.getLogger(__name__)

SOURCE = "pandas DataFrame"
DEFAULT_NAME = "dataframe"
_RESERVED = ("id", "speaker", "status", "error", "audio_s")  # the table's own columns, never tags
Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class Estimate:
    """One aggregate WER of all the utterances, with its interval (None ends: no interval)."""

    wer: float | None
    low: float | None
    high: float | None
    note: str | None = None  # why there is no interval


@dataclass(frozen=True)
class Overall:
    """The whole frame: the headline aggregate's WER, and all three aggregates with intervals."""

    aggregate: str  # the headline: pooled unless asked otherwise
    pooled: Estimate  # Σ errors / Σ reference words: equals jiwer.wer over the normalised pairs
    speaker_mean: Estimate  # each speaker's pooled WER, averaged
    utterance_mean: Estimate  # per-utterance WER, averaged
    speakers: int
    utterances: int
    words: int
    failed: int  # rows without a hypothesis: reported, never scored as empty

    @property
    def headline(self) -> Estimate:
        return {"pooled": self.pooled, "speaker-mean": self.speaker_mean, "utterance-mean": self.utterance_mean}[
            self.aggregate
        ]


@dataclass(frozen=True)
class SliceReport:
    """What :func:`score_frame` returns: read ``overall``, ``by_slice`` and ``disparity``; render
    with :meth:`to_html` / :meth:`to_markdown`; :meth:`to_dict` is metrics.json's content, the
    typed :class:`~harness.results.RunResult` in ``result``.

    ``by_slice`` and ``disparity`` are tidy pandas views of the typed statistics in ``aggregates``
    (the dataclasses of :mod:`harness.stats.by_slice`); ``table`` is the scored per-utterance table
    (utterances.parquet's columns)."""

    overall: Overall
    by_slice: dict[str, pd.DataFrame]  # dimension name -> one row per slice
    disparity: pd.DataFrame  # one row per dimension, indexed by its name
    slices: list[SliceSpec]
    aggregates: Aggregates = field(repr=False)
    table: pd.DataFrame = field(repr=False)
    result: RunResult = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """metrics.json's content (schema in docs/metrics.md), a copy the caller may change."""
        return self.result.to_dict()

    def to_markdown(self) -> str:
        """report.md's text."""
        from harness.report.markdown import render_markdown

        return render_markdown(self.result)

    def to_html(self, path: str | Path | None = None) -> str:
        """report.html's page (self-contained); written to ``path`` too when one is given."""
        from harness.report.html import render_html

        target = Path(path) if path is not None else None
        folder = target.parent.resolve() if target is not None else Path.cwd()
        page = render_html(self.result, self.table, self.slices, report_dir=folder)
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(page, encoding="utf-8")
        return page


def score_frame(
    df: pd.DataFrame,
    *,
    reference: str = "reference",
    hypothesis: str = "hypothesis",
    speaker: str = "speaker",
    utterance_id: str | None = None,
    duration: str | None = None,
    tags: Sequence[str] | None = None,
    normalizer: str | None = None,
    slices: str | Path | Sequence[str | Sequence[str] | dict[str, Any] | SliceSpec] | None = None,
    aggregate: str | None = None,
    seed: int | None = None,
    confidence: float | None = None,
    min_speakers: int | None = None,
    min_words: int | None = None,
    stats: dict[str, Any] | None = None,
    runaway: dict[str, Any] | None = None,
    card: str | Path | None = None,
    name: str = DEFAULT_NAME,
) -> SliceReport:
    """WER by slice, with intervals and disparity, of one row per utterance.

    ``reference``/``hypothesis``/``speaker``: the columns holding them (a null hypothesis is a
    failed utterance, reported but never scored as empty). Speakers are the unit of every interval
    and test, so a speaker column is required. ``utterance_id``: a column of utterance ids
    (default: an ``id`` column, else the index). ``duration``: clip seconds, for the runaway
    ``rate`` rule. ``tags``: the columns to slice by (default: every other column but id, status,
    error and audio_s); values are compared as text. ``normalizer``: a normaliser name or file
    (default: a run config's, ``whisper-english``). ``slices``: a slice file, or a list of tag
    names, tuples of tags (an intersection), slice-file entries or :class:`SliceSpec` (default:
    one dimension per tag). ``aggregate``, ``seed``, ``confidence``, ``min_speakers``,
    ``min_words`` and any other key of ``stats`` / ``runaway`` mean what they mean in a run
    config (docs/config.md). ``name``: the reports' title. Bad input raises :class:`InputError`
    (one line naming the column or option and the fix). docs/api.md walks through it.
    """
    # Imported here: they pull in the run pipeline (audio conditions, backends), which most
    # users of `import harness` never need.
    from harness.config import RunawayConfig, RunConfig, StatsConfig
    from harness.pipeline import resolve_normalizers, score_results  # the run's own scoring path

    chosen = {
        "aggregate": aggregate,
        "seed": seed,
        "confidence": confidence,
        "min_speakers": min_speakers,
        "min_words": min_words,
    }
    given = {k: v for k, v in chosen.items() if v is not None}
    stats_config = _validated(StatsConfig, {**(stats or {}), **given}, "stats")
    runaway_config = _validated(RunawayConfig, runaway or {}, "runaway")
    normalizer = normalizer or RunConfig.model_fields["normalizer"].default
    frame, tag_names = _utterance_frame(df, reference, hypothesis, speaker, utterance_id, duration, tags)
    specs = _slice_specs(slices, tag_names)
    check_slices(specs, frame, tag_names, "score_frame(slices=...)")
    specs, dropped = drop_duplicate_dimensions(specs, frame)  # as a run does: no dimension counted twice
    for item in dropped:
        log.warning("%s", item.describe())
    compared = [(f"score_frame(stats.normalizers[{i}])", n) for i, n in enumerate(stats_config.normalizers)]
    normalizers = resolve_normalizers([("score_frame(normalizer=)", normalizer), *compared])
    provenance = _provenance(name, frame, normalizers[0].stamp, specs, stats_config, runaway_config, hypothesis)
    provenance["dataset_card"] = _card(card)
    scored = score_results(frame, specs, normalizers, stats_config, runaway_config, [], provenance)
    return SliceReport(
        overall=_overall(scored.aggregates, scored.table),
        by_slice={d.name: by_slice_frame(d) for d in scored.aggregates.headline.dimensions},
        disparity=disparity_frame(scored.aggregates.headline.dimensions, stats_config.confidence),
        slices=specs,
        aggregates=scored.aggregates,
        table=scored.table,
        result=scored.result,
    )


def _validated(model: type[Model], values: dict[str, Any], key: str) -> Model:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InputError(f"score_frame({key}): {format_validation_error(exc, model=model)}") from None


def _utterance_frame(
    df: pd.DataFrame,
    reference: str,
    hypothesis: str,
    speaker: str,
    id_column: str | None,
    duration: str | None,
    tags: Sequence[str] | None,
) -> tuple[pd.DataFrame, list[str]]:
    """The columns :func:`harness.scoring.table.utterance_frame` gives a run, from the user's frame."""
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"score_frame: expected a pandas DataFrame, got {type(df).__name__}")
    columns = [str(c) for c in df.columns]
    for role, column in (("reference", reference), ("hypothesis", hypothesis)):
        if column not in df.columns:
            raise InputError(
                f"score_frame: no column '{column}' for the {role}s; pass {role}='<column>' "
                f"(columns: {', '.join(columns) or 'none'})"
            )
    if speaker not in df.columns:
        raise InputError(
            f"score_frame: no speaker column '{speaker}'; speakers are the unit of every interval and test, so "
            f"pass speaker='<column>' naming who spoke each utterance (columns: {', '.join(columns) or 'none'})"
        )
    for role, column in (("id", id_column), ("duration", duration)):
        if column is not None and column not in df.columns:
            raise InputError(f"score_frame: no column '{column}' for {role}=; columns: {', '.join(columns)}")
    if df.empty:
        raise InputError("score_frame: the DataFrame has no rows; pass one row per utterance")
    if df[speaker].isna().all():
        raise InputError(
            f"score_frame: speaker column '{speaker}' is empty; speakers are the unit of every interval and test, so "
            "fill it with who spoke each utterance"
        )
    if id_column is None and "id" in df.columns:
        id_column = "id"
    used = {reference, hypothesis, speaker, id_column, duration}
    if tags is None:  # every other column that is not one of the table's own
        tag_names = [str(c) for c in df.columns if c not in used and c not in _RESERVED]
    else:
        tag_names = [str(t) for t in tags]
    for tag in tag_names:
        if tag not in df.columns:
            raise InputError(f"score_frame: tags lists '{tag}', which is not a column; columns: {', '.join(columns)}")
        if tag in _RESERVED or tag in used:
            raise InputError(
                f"score_frame: tag '{tag}' is a column asrfair uses itself; rename it (df.rename(columns=...)) "
                "or leave it out of tags="
            )
    ids = df[id_column] if id_column is not None else pd.Series(df.index, index=df.index)
    if ids.duplicated().any():
        twice = ids[ids.duplicated()].iloc[0]
        where = f"column '{id_column}'" if id_column else "the index"
        raise InputError(f"score_frame: utterance id {twice!r} appears twice in {where}; ids must be unique")
    missing = df[reference].isna().to_numpy()
    if missing.any():
        raise InputError(
            f"score_frame: row {df.index[missing][0]!r} has no reference in column '{reference}'; every utterance "
            "needs its reference text (drop the row, or use '' for silence)"
        )
    hyp = df[hypothesis]
    ok = hyp.notna().to_numpy()
    frame = pd.DataFrame(
        {
            "id": ids.astype(str).to_numpy(),
            "speaker": _text(df[speaker]).to_numpy(),
            "language": _text(df["language"]).to_numpy() if "language" in tag_names else None,
            **{tag: _text(df[tag]).to_numpy() for tag in tag_names if tag != "language"},
            "status": ["ok" if o else "missing" for o in ok],
            "error": [None if o else "no hypothesis" for o in ok],
            "reference": _text(df[reference]).to_numpy(),
            "hypothesis": _text(hyp).to_numpy(),
            "audio_s": pd.to_numeric(df[duration], errors="coerce").to_numpy() if duration else float("nan"),
        }
    )
    return frame, tag_names


def _text(column: pd.Series) -> pd.Series:
    """Values as text, nulls as None (manifest tags are strings; a missing one is a null)."""
    return column.astype(object).where(column.notna(), None).map(lambda v: v if v is None else str(v))


def _slice_specs(slices: Any, tag_names: list[str]) -> list[SliceSpec]:
    if slices is None:
        return default_slices(tag_names)
    if isinstance(slices, str | Path):
        return load_slices(slices)
    specs = []
    for i, entry in enumerate(slices):
        if isinstance(entry, SliceSpec):
            specs.append(entry)
            continue
        data = {"by": entry} if isinstance(entry, str | list | tuple) else entry
        try:
            specs.append(SliceSpec.model_validate(data))
        except ValidationError as exc:
            raise InputError(f"score_frame(slices[{i}]): {format_validation_error(exc, model=SliceSpec)}") from None
    if not specs:
        raise InputError("score_frame(slices=[]): defines no dimension; pass None for one dimension per tag")
    return specs


def _provenance(
    name: str,
    frame: pd.DataFrame,
    normalizer: str,
    specs: list[SliceSpec],
    stats: BaseModel,
    runaway: BaseModel,
    hypothesis: str,
) -> dict[str, Any]:
    """What metrics.json and the reports say produced the numbers: a DataFrame, not a manifest."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame.drop(columns="audio_s"), index=False).to_numpy().tobytes())
    return {
        "run_name": name,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "harness_version": __version__,
        "git_sha": None,
        "manifest": {"path": SOURCE, "sha256": digest.hexdigest(), "utterances": len(frame)},
        "backend": {
            "name": "given",
            "id": f"column '{hypothesis}'",
            "model": "hypotheses given in the frame (no backend ran)",
            "model_revision": None,
            "decoding": {},
            "fingerprint": {"source": SOURCE, "hypotheses": hypothesis},
        },
        "config": {
            "normalizer": normalizer,
            "slices": [s.model_dump(mode="json", exclude_defaults=True) for s in specs],
            "stats": stats.model_dump(mode="json"),
            "runaway": runaway.model_dump(mode="json"),
            "conditions": [],
        },
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _card(card: str | Path | None) -> dict[str, Any]:
    """The dataset card's caveats (synthetic speech, licence, ...), which every output repeats; a frame has
    no manifest beside which to find one, so it is named with ``card=``."""
    from harness.data.card import Caveat, card_caveats

    if card is None:
        missing = Caveat(
            "no card",
            "no dataset card given (score_frame(card=...)): the source, licence and whether the speech is "
            "real or synthetic are not recorded with these numbers",
        )
        return {"path": None, "caveats": [asdict(missing)]}
    path = Path(card)
    if not path.is_file():
        raise InputError(f"score_frame(card={str(card)!r}): not a file; give the dataset.yaml of the data")
    return {"path": str(path), "caveats": [asdict(c) for c in card_caveats(path)]}


def _estimate(stats: SliceStats) -> Estimate:
    low, high = stats.wer_ci or (None, None)
    return Estimate(stats.wer, low, high, stats.interval_note)


def _overall(aggregates: Aggregates, table: pd.DataFrame) -> Overall:
    blocks = aggregates.blocks
    pooled = blocks["pooled"].overall
    return Overall(
        aggregate=aggregates.headline_aggregate,
        pooled=_estimate(pooled),
        speaker_mean=_estimate(blocks["speaker-mean"].overall),
        utterance_mean=_estimate(blocks["utterance-mean"].overall),
        speakers=pooled.speakers,
        utterances=pooled.utterances,
        words=pooled.words,
        failed=int((table["status"] != "ok").sum()),
    )


def by_slice_frame(dimension: Dimension) -> pd.DataFrame:
    """One row per slice of a dimension: its tag values, the headline WER and interval, support,
    the three aggregates, the difference from the dimension's overall and the ★ mark."""
    rows = []
    for s in dimension.slices:
        low, high = s.wer_ci or (None, None)
        vs = s.vs_overall
        vs_low, vs_high = vs.difference_ci if vs is not None else (None, None)
        rows.append(
            {
                "slice": s.label,
                **{tag: s.values.get(tag) for tag in dimension.by},
                "wer": s.wer,
                "low": low,
                "high": high,
                "speakers": s.speakers,
                "utterances": s.utterances,
                "words": s.words,
                "failed": s.failed,
                "ranked": rankable(s.supported, s.wer is not None, s.values),
                "significantly_worse": s.significantly_worse,
                "vs_overall": vs.difference if vs is not None else None,
                "vs_overall_low": vs_low,
                "vs_overall_high": vs_high,
                "pooled_wer": s.pooled_wer,
                "speaker_mean_wer": s.speaker_mean_wer,
                "utterance_mean_wer": s.utterance_mean_wer,
                "flags": ", ".join(s.flags),
            }
        )
    return pd.DataFrame(rows)


def disparity_frame(dimensions: Sequence[Dimension], confidence: float) -> pd.DataFrame:
    """One row per dimension: worst and best ranked slice, gap and ratio with their simultaneous
    intervals, the dimension's test, and the verdict in the reports' words."""
    from harness.report.format import disparity_sentence, test_sentence

    rows = []
    for d in dimensions:
        disparity, test = d.disparity, d.test
        gap_low, gap_high = disparity.gap_ci or (None, None)
        ratio_low, ratio_high = disparity.ratio_ci or (None, None)
        rows.append(
            {
                "dimension": d.name,
                "ranked": disparity.ranked,
                "worst": disparity.worst,
                "worst_wer": disparity.worst_wer,
                "best": disparity.best,
                "best_wer": disparity.best_wer,
                "gap": disparity.gap,
                "gap_low": gap_low,
                "gap_high": gap_high,
                "ratio": disparity.ratio,
                "ratio_low": ratio_low,
                "ratio_high": ratio_high,
                "detected": disparity.detected,
                "p_value": test.p_value if test else None,
                "p_holm": test.p_holm if test else None,
                "significant": bool(test and test.significant),
                "verdict": _verdict(d),
                "sentence": disparity_sentence(disparity).replace("**", ""),
                "test": test_sentence(test, confidence),
            }
        )
    return pd.DataFrame(rows).set_index("dimension")


def _verdict(dimension: Dimension) -> str:
    """The disparity's own verdict: a gap whose simultaneous interval excludes 0, none, or why not."""
    disparity = dimension.disparity
    if disparity.worst is None:
        return disparity.note or "no disparity computed"
    if disparity.detected is None:
        return "cannot tell: no interval for the gap (too few speakers, or no spread)"
    return "gap detected" if disparity.detected else "no detectable gap"
