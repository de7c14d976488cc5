"""WER per slice and disparity per dimension, pooled from per-utterance counts.

The headline WER of any set of utterances is *pooled*: Σ(S+D+I) / Σ reference words, so every
regrouping is exact and equals ``jiwer.wer`` over the same pairs. Two other aggregates are
reported beside it, never instead of it: the speaker mean (each speaker's pooled WER, averaged;
every person counts once) and the utterance mean (mean of per-utterance WER over utterances
with at least one reference word; short clips weigh as much as long ones).

Failed utterances are excluded from the counts and reported per slice as ``failed``. Slices
below ``min_speakers`` or ``min_words`` are reported but flagged, and never ranked as best or
worst. An utterance without a speaker id counts as its own speaker (and is flagged).
A ``(missing)`` slice (utterances without the tag) is reported but not ranked either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from harness.slices import LABEL, MISSING, SliceSpec, slice_frame

_SUMS = ["hits", "substitutions", "deletions", "insertions", "ref_words", "errors"]


@dataclass(frozen=True)
class SliceStats:
    label: str
    values: dict[str, str]
    utterances: int
    failed: int
    speakers: int
    words: int
    errors: int
    substitutions: int
    deletions: int
    insertions: int
    wer: float | None
    sub_rate: float | None
    del_rate: float | None
    ins_rate: float | None
    speaker_mean_wer: float | None
    utterance_mean_wer: float | None
    supported: bool
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Disparity:
    """Spread of pooled WER over the ranked (well-supported) slices of one dimension."""

    ranked: int
    best: str | None = None
    best_wer: float | None = None
    worst: str | None = None
    worst_wer: float | None = None
    ratio: float | None = None  # worst / best; None when the best WER is 0
    gap: float | None = None  # worst - best, in WER points (absolute)
    worst_vs_overall: float | None = None  # worst - the pooled WER of the dimension's utterances
    with_failures: list[str] = field(default_factory=list)  # slices where some utterances failed
    note: str | None = None


@dataclass(frozen=True)
class Dimension:
    name: str
    by: list[str]
    slices: list[SliceStats]
    overall_wer: float | None  # pooled over the utterances this dimension keeps (after `where`)
    disparity: Disparity


@dataclass(frozen=True)
class Summary:
    overall: SliceStats
    dimensions: list[Dimension]
    min_speakers: int
    min_words: int
    aggregate: str = "pooled"


def summarise(table: pd.DataFrame, specs: Sequence[SliceSpec], *, min_speakers: int, min_words: int) -> Summary:
    table = table.assign(cluster=cluster_units(table))
    everyone = pd.DataFrame({LABEL: "overall"}, index=table.index)
    overall = _slice_table(table, everyone, min_speakers, min_words)[0]
    dimensions = []
    for spec in specs:
        labels = slice_frame(table, spec)
        slices = _slice_table(table, labels, min_speakers, min_words)
        # "overall" for this dimension is what its `where` keeps, not the whole data set.
        kept = _slice_table(table, labels[[LABEL]].where(labels[LABEL].isna(), "kept"), min_speakers, min_words)
        dimension_wer = kept[0].wer if kept else None
        dimensions.append(
            Dimension(spec.label, list(spec.by), slices, dimension_wer, _disparity(slices, dimension_wer))
        )
    return Summary(overall, dimensions, min_speakers, min_words)


def cluster_units(table: pd.DataFrame) -> pd.Series:
    """Speaker per utterance; an utterance without a speaker id is its own unit."""
    return table["speaker"].astype("object").fillna("utt:" + table["id"].astype(str))


def _slice_table(table: pd.DataFrame, labels: pd.DataFrame, min_speakers: int, min_words: int) -> list[SliceStats]:
    """``labels`` is :func:`slice_frame`'s output: the slice label and each tag's value."""
    frame = table[["status", "speaker", "cluster", "wer", *_SUMS]].join(labels).dropna(subset=[LABEL])
    tag_values = frame.groupby(LABEL)[[c for c in labels.columns if c != LABEL]].first()
    ok = frame[frame["status"] == "ok"]
    sums = ok.groupby(LABEL)[_SUMS].sum().astype("int64")
    utterances = ok.groupby(LABEL).size()
    failed = frame[frame["status"] != "ok"].groupby(LABEL).size()
    speakers = ok.groupby(LABEL)["cluster"].nunique()
    unlabelled = ok[ok["speaker"].isna()].groupby(LABEL).size()
    per_speaker = ok.groupby([LABEL, "cluster"])[["errors", "ref_words"]].sum()
    per_speaker = per_speaker[per_speaker["ref_words"] > 0]
    speaker_wer = (per_speaker["errors"] / per_speaker["ref_words"]).groupby(level=0).mean()
    utterance_wer = ok[ok["ref_words"] > 0].groupby(LABEL)["wer"].mean()

    out = []
    for label in sorted(frame[LABEL].unique()):
        row = sums.loc[label] if label in sums.index else pd.Series(0, index=_SUMS)
        words = int(row["ref_words"])
        n_speakers = int(speakers.get(label, 0))
        n_utterances, n_failed = int(utterances.get(label, 0)), int(failed.get(label, 0))
        support = []
        if n_speakers < min_speakers:
            support.append(f"speakers<{min_speakers}")
        if words < min_words:
            support.append(f"words<{min_words}")
        notes = []
        if n_failed:
            notes.append(f"failed {n_failed}/{n_failed + n_utterances}")
        if unlabelled.get(label, 0):
            notes.append(f"{int(unlabelled[label])} without speaker id")
        out.append(
            SliceStats(
                label=str(label),
                values={k: str(v) for k, v in tag_values.loc[label].items()},
                utterances=n_utterances,
                failed=n_failed,
                speakers=n_speakers,
                words=words,
                errors=int(row["errors"]),
                substitutions=int(row["substitutions"]),
                deletions=int(row["deletions"]),
                insertions=int(row["insertions"]),
                wer=_rate(row["errors"], words),
                sub_rate=_rate(row["substitutions"], words),
                del_rate=_rate(row["deletions"], words),
                ins_rate=_rate(row["insertions"], words),
                speaker_mean_wer=_opt(speaker_wer.get(label)),
                utterance_mean_wer=_opt(utterance_wer.get(label)),
                supported=not support,
                flags=support + notes,
            )
        )
    return out


def _disparity(slices: list[SliceStats], overall_wer: float | None) -> Disparity:
    ranked = [s for s in slices if s.supported and s.wer is not None and MISSING not in s.values.values()]
    with_failures = [s.label for s in slices if s.failed]
    if not slices:
        return Disparity(ranked=0, note="no utterance falls in this dimension (check its where:)")
    if len(slices) < 2:
        return Disparity(ranked=len(ranked), with_failures=with_failures, note="only one slice; nothing to compare")
    if len(ranked) < 2:
        return Disparity(
            ranked=len(ranked),
            with_failures=with_failures,
            note="fewer than two slices meet min_speakers/min_words; no disparity is claimed",
        )
    best = min(ranked, key=lambda s: s.wer)  # type: ignore[arg-type,return-value]
    worst = max(ranked, key=lambda s: s.wer)  # type: ignore[arg-type,return-value]
    return Disparity(
        ranked=len(ranked),
        best=best.label,
        best_wer=best.wer,
        worst=worst.label,
        worst_wer=worst.wer,
        ratio=worst.wer / best.wer if best.wer else None,  # type: ignore[operator]
        gap=worst.wer - best.wer,  # type: ignore[operator]
        worst_vs_overall=worst.wer - overall_wer if overall_wer is not None else None,  # type: ignore[operator]
        with_failures=with_failures,
    )


def _rate(numerator: float, denominator: int) -> float | None:
    return float(numerator) / denominator if denominator > 0 else None


def _opt(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)  # type: ignore[arg-type]
