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

Uncertainty (see :mod:`harness.bootstrap` and :mod:`harness.significance`): every WER, every
disparity figure and every comparison with a reference group carries a percentile interval
from one shared speaker-clustered bootstrap; each dimension gets a speaker-level permutation
test, Holm-corrected across dimensions. A slice is marked significantly worse than its
dimension's overall WER only when (a) it is ranked, (b) its dimension's Holm-adjusted p-value is
below ``1 - confidence`` and (c) the interval of its difference from that overall excludes 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from harness.bootstrap import Resampler, cell_sums, percentile_interval
from harness.significance import holm, permutation_test
from harness.slices import LABEL, UNRANKED, SliceSpec, slice_frame

_SUMS = ["hits", "substitutions", "deletions", "insertions", "ref_words", "errors"]
Interval = list[float | None]  # [low, high]


@dataclass(frozen=True)
class StatsOptions:
    min_speakers: int = 5
    min_words: int = 200
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    permutations: int = 1000


@dataclass(frozen=True)
class Comparison:
    """A slice against a baseline WER (the dimension's overall, or the reference group)."""

    difference: float | None
    difference_ci: Interval
    ratio: float | None = None
    ratio_ci: Interval | None = None


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
    wer_ci: Interval | None = None
    vs_overall: Comparison | None = None
    vs_reference: Comparison | None = None
    significantly_worse: bool = False


@dataclass(frozen=True)
class Disparity:
    """Spread of pooled WER over the ranked (well-supported) slices of one dimension."""

    ranked: int
    best: str | None = None
    best_wer: float | None = None
    worst: str | None = None
    worst_wer: float | None = None
    ratio: float | None = None  # worst / best; None when the best WER is 0
    ratio_ci: Interval | None = None
    gap: float | None = None  # worst - best, in WER points (absolute)
    gap_ci: Interval | None = None
    worst_vs_overall: float | None = None  # worst - the pooled WER of the dimension's utterances
    worst_vs_overall_ci: Interval | None = None
    reference: str | None = None
    with_failures: list[str] = field(default_factory=list)  # slices where some utterances failed
    note: str | None = None


@dataclass(frozen=True)
class Test:
    """Permutation test of "WER does not depend on this dimension" over its ranked slices."""

    kind: str  # between-speaker | within-speaker
    statistic: float
    permutations: int
    p_value: float
    p_holm: float | None = None
    significant: bool = False


@dataclass(frozen=True)
class Dimension:
    name: str
    by: list[str]
    slices: list[SliceStats]
    overall_wer: float | None  # pooled over the utterances this dimension keeps (after `where`)
    overall_wer_ci: Interval | None
    disparity: Disparity
    test: Test | None = None


@dataclass(frozen=True)
class Summary:
    overall: SliceStats
    dimensions: list[Dimension]
    options: StatsOptions
    method: str = "speaker-clustered percentile bootstrap; speaker-level permutation test, Holm-corrected"
    aggregate: str = "pooled"


def summarise(table: pd.DataFrame, specs: Sequence[SliceSpec], options: StatsOptions) -> Summary:
    table = table.assign(cluster=cluster_units(table))
    ok = table[table["status"] == "ok"]
    cluster_ids, cluster = np.unique(ok["cluster"].to_numpy(dtype=object).astype(str), return_inverse=True)
    errors = ok["errors"].to_numpy(dtype=np.float64)
    words = ok["ref_words"].to_numpy(dtype=np.float64)
    resampler = Resampler.draw(len(cluster_ids), options.bootstrap, options.seed)

    everyone = pd.DataFrame({LABEL: "overall"}, index=table.index)
    overall = _slice_table(table, everyone, options)[0]
    overall_reps = resampler.rates(
        np.bincount(cluster, errors, len(cluster_ids))[:, None], np.bincount(cluster, words, len(cluster_ids))[:, None]
    )
    overall = replace(overall, wer_ci=_interval(overall_reps, options.confidence)[0])

    dimensions = []
    for index, spec in enumerate(specs):
        labels = slice_frame(table, spec)
        slices = _slice_table(table, labels, options)
        codes = pd.Categorical(labels.loc[ok.index, LABEL], categories=[s.label for s in slices]).codes
        e_sk = cell_sums(cluster, codes, errors, len(cluster_ids), len(slices))
        n_sk = cell_sums(cluster, codes, words, len(cluster_ids), len(slices))
        reps = resampler.rates(e_sk, n_sk)
        dim_reps = resampler.rates(e_sk.sum(axis=1, keepdims=True), n_sk.sum(axis=1, keepdims=True))[:, 0]
        dim_wer = _rate(e_sk.sum(), n_sk.sum())
        slices = _with_intervals(slices, reps, dim_reps, dim_wer, spec.reference, options.confidence)
        ranked = [i for i, s in enumerate(slices) if _rankable(s)]
        test = _test(cluster, codes, errors, words, ranked, options, seed_offset=index + 1)
        dimensions.append(
            Dimension(
                spec.label,
                list(spec.by),
                slices,
                dim_wer,
                _interval(dim_reps[:, None], options.confidence)[0],
                _disparity(slices, ranked, reps, dim_reps, dim_wer, spec.reference, options.confidence),
                test,
            )
        )
    return Summary(overall, _holm_and_marks(dimensions, 1.0 - options.confidence), options)


def cluster_units(table: pd.DataFrame) -> pd.Series:
    """Speaker per utterance; an utterance without a speaker id is its own unit."""
    return table["speaker"].astype("object").fillna("utt:" + table["id"].astype(str))


def _rankable(s: SliceStats) -> bool:
    return s.supported and s.wer is not None and not UNRANKED.intersection(s.values.values())


def _interval(replicates: np.ndarray, confidence: float) -> list[Interval | None]:
    """One [low, high] per column; None when there are no replicates."""
    if replicates.shape[0] == 0:
        return [None] * replicates.shape[1]
    low, high = percentile_interval(replicates, confidence)
    return [[_opt(lo), _opt(hi)] for lo, hi in zip(low, high, strict=True)]


def _with_intervals(
    slices: list[SliceStats],
    reps: np.ndarray,
    dim_reps: np.ndarray,
    dim_wer: float | None,
    reference: str | None,
    confidence: float,
) -> list[SliceStats]:
    wer_cis = _interval(reps, confidence)
    diff_cis = _interval(reps - dim_reps[:, None], confidence)
    ref_index = next((i for i, s in enumerate(slices) if s.label == reference), None)
    out = []
    for i, s in enumerate(slices):
        vs_overall = Comparison(_diff(s.wer, dim_wer), diff_cis[i] or [None, None])
        vs_reference = None
        if ref_index is not None:
            ref = slices[ref_index]
            ref_reps = reps[:, ref_index]
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio_reps = np.where(ref_reps > 0, reps[:, i] / np.where(ref_reps > 0, ref_reps, 1), np.nan)
            vs_reference = Comparison(
                _diff(s.wer, ref.wer),
                _interval((reps[:, i] - ref_reps)[:, None], confidence)[0] or [None, None],
                s.wer / ref.wer if s.wer is not None and ref.wer else None,
                _interval(ratio_reps[:, None], confidence)[0],
            )
        out.append(replace(s, wer_ci=wer_cis[i], vs_overall=vs_overall, vs_reference=vs_reference))
    return out


def _test(
    cluster: np.ndarray,
    codes: np.ndarray,
    errors: np.ndarray,
    words: np.ndarray,
    ranked: list[int],
    options: StatsOptions,
    seed_offset: int,
) -> Test | None:
    if len(ranked) < 2 or options.permutations < 1:
        return None
    remap = np.full(codes.max() + 2, -1)
    remap[ranked] = np.arange(len(ranked))
    new_codes = remap[codes]  # codes of -1 (outside the dimension) map through the last entry to -1
    keep = new_codes >= 0
    result = permutation_test(
        cluster[keep],
        new_codes[keep],
        errors[keep],
        words[keep],
        permutations=options.permutations,
        seed=options.seed + seed_offset,
    )
    if result is None:
        return None
    return Test(result.kind, result.statistic, result.permutations, result.p_value)


def _holm_and_marks(dimensions: list[Dimension], alpha: float) -> list[Dimension]:
    tested = [i for i, d in enumerate(dimensions) if d.test is not None]
    adjusted = holm([dimensions[i].test.p_value for i in tested])  # type: ignore[union-attr]
    out = list(dimensions)
    for i, p_holm in zip(tested, adjusted, strict=True):
        dim = dimensions[i]
        significant = p_holm < alpha
        test = replace(dim.test, p_holm=p_holm, significant=significant)  # type: ignore[type-var]
        slices = [
            replace(s, significantly_worse=significant and _rankable(s) and _above_zero(s.vs_overall))
            for s in dim.slices
        ]
        out[i] = replace(dim, test=test, slices=slices)
    return out


def _above_zero(comparison: Comparison | None) -> bool:
    low = comparison.difference_ci[0] if comparison else None
    return low is not None and low > 0


def _slice_table(table: pd.DataFrame, labels: pd.DataFrame, options: StatsOptions) -> list[SliceStats]:
    """Point estimates per slice; ``labels`` is :func:`slice_frame`'s output."""
    min_speakers, min_words = options.min_speakers, options.min_words
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


def _disparity(
    slices: list[SliceStats],
    ranked: list[int],
    reps: np.ndarray,
    dim_reps: np.ndarray,
    dim_wer: float | None,
    reference: str | None,
    confidence: float,
) -> Disparity:
    with_failures = [s.label for s in slices if s.failed]
    if not slices:
        return Disparity(ranked=0, note="no utterance falls in this dimension (check its where:)")
    if len(slices) < 2:
        return Disparity(ranked=len(ranked), with_failures=with_failures, note="only one slice; nothing to compare")
    if len(ranked) < 2:
        return Disparity(
            ranked=len(ranked),
            reference=reference,
            with_failures=with_failures,
            note="fewer than two slices meet min_speakers/min_words; no disparity is claimed",
        )
    wers = np.array([slices[i].wer for i in ranked], dtype=float)
    best, worst = ranked[int(np.argmin(wers))], ranked[int(np.argmax(wers))]
    best_wer, worst_wer = float(wers.min()), float(wers.max())
    # Each replicate recomputes the statistic over the same ranked slices, so both ends' noise counts.
    ranked_reps = reps[:, ranked]
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # a replicate may draw no speaker of any slice
        high, low = np.nanmax(ranked_reps, axis=1), np.nanmin(ranked_reps, axis=1)
        ratio_reps = np.where(low > 0, high / np.where(low > 0, low, 1), np.nan)
    figures = np.column_stack([ratio_reps, high - low, reps[:, worst] - dim_reps]) if reps.shape[0] else reps[:, :0]
    cis = _interval(figures, confidence) if reps.shape[0] else [None, None, None]
    return Disparity(
        ranked=len(ranked),
        best=slices[best].label,
        best_wer=best_wer,
        worst=slices[worst].label,
        worst_wer=worst_wer,
        ratio=worst_wer / best_wer if best_wer > 0 else None,
        ratio_ci=cis[0],
        gap=worst_wer - best_wer,
        gap_ci=cis[1],
        worst_vs_overall=_diff(worst_wer, dim_wer),
        worst_vs_overall_ci=cis[2],
        reference=reference,
        with_failures=with_failures,
    )


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _rate(numerator: float, denominator: int) -> float | None:
    return float(numerator) / denominator if denominator > 0 else None


def _opt(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)  # type: ignore[arg-type]
