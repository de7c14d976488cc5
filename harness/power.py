"""How many speakers a slice needs before a WER gap that matters would be seen.

The model (docs/coverage.md, *Planning*): each utterance's WER is its speaker's own rate plus
noise, ``y = μ_slice + b_speaker + e``, with speakers drawn from the slice (``Var b = σ_b²``,
between speakers) and utterances from the speaker (``Var e = σ_w²``, within a speaker). The two
components are estimated per slice from a finished run by the one-way random-effects analysis
of variance (method of moments, unbalanced). A slice mean over ``n`` speakers with ``k``
utterances each then has variance ``σ_b²/n + σ_w²/(n k)`` (as recorded, with ``nᵢ`` utterances
per speaker and ``N`` in all: ``σ_b² Σnᵢ²/N² + σ_w²/N``), and a two-sided test at level α
detects a gap Δ against an independent comparison group with probability ``power`` when

    Δ ≥ (z_{1-α/2} + z_power) · sqrt(V_slice(n, k) + V_comparison).

The comparison group is the dimension's ``reference`` slice when it has one, else the rest of
the dimension, each at its current size. Solving for ``n`` gives the speakers a slice needs; more
utterances per speaker only shrink the within term, so there is a floor no ``k`` gets under.
:func:`simulate` draws corpora from the same model, to check the plan against the run's own test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np
import pandas as pd

from harness.slices import UNRANKED, SliceSpec, TagCodes, slice_codes
from harness.stats import cluster_units

MIN_SPEAKERS_PLANNED = 2


@dataclass(frozen=True)
class Components:
    """Variance components of utterance WER in one group of utterances."""

    speakers: int
    utterances: int
    per_speaker: float  # mean utterances per speaker
    mean: float  # mean utterance WER
    between: float  # σ_b²
    within: float  # σ_w²
    squared_counts: float = 0.0  # Σ (utterances of a speaker)²: how unevenly the speakers recorded

    def variance(self) -> float:
        """Variance of the group's mean WER as recorded: each speaker weighs as many utterances as
        they gave, so uneven recording makes it larger than the balanced formula's."""
        n = self.utterances
        return self.between * self.squared_counts / n**2 + self.within / n

    def planned_variance(self, speakers: float, per_speaker: float) -> float:
        """Variance of the mean over ``speakers`` who each record ``per_speaker`` utterances."""
        return self.between / speakers + self.within / (speakers * per_speaker)


def components(wer: np.ndarray, speaker: np.ndarray) -> Components | None:
    """One-way random-effects ANOVA of utterance WERs by speaker; None with fewer than two speakers."""
    codes, uniques = pd.factorize(speaker)
    s, n = len(uniques), len(wer)
    if s < 2 or n <= s:
        return None
    counts = np.bincount(codes, minlength=s).astype(float)
    means = np.bincount(codes, weights=wer, minlength=s) / counts
    grand = float(wer.mean())
    within = float(((wer - means[codes]) ** 2).sum() / (n - s))
    between_ms = float((counts * (means - grand) ** 2).sum() / (s - 1))
    m0 = (n - (counts**2).sum() / n) / (s - 1)
    between = float(max(0.0, (between_ms - within) / m0))
    return Components(s, n, n / s, grand, between, within, float((counts**2).sum()))


def z_sum(alpha: float, power: float) -> float:
    return NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)


@dataclass(frozen=True)
class SlicePlan:
    label: str
    compared_with: str  # the reference slice, or "rest of <dimension>"
    speakers: int
    per_speaker: float
    planned_per_speaker: float
    between: float | None
    within: float | None
    detectable_now: float | None = None  # the gap detectable with the data as it is (model-based)
    need: int | None = None  # speakers at planned_per_speaker; None: not reachable by this slice alone
    record_more: int | None = None
    floor: int | None = None  # speakers needed however many utterances each records
    need_both: int | None = None  # speakers in the slice and in its comparison group, both grown alike
    note: str | None = None


@dataclass(frozen=True)
class DimensionPlan:
    name: str
    slices: list[SlicePlan]


@dataclass(frozen=True)
class Plan:
    gap: float
    power: float
    alpha: float
    utts_per_speaker: float | None  # None: each slice keeps its own mean
    method: str
    dimensions: list[DimensionPlan]


METHOD = (
    "one-way random-effects variance components of utterance WER per slice (method of moments); "
    "two-sided normal test against the reference slice or the rest of the dimension, at its current size"
)


def plan(
    table: pd.DataFrame,
    specs: Sequence[SliceSpec],
    *,
    gap: float,
    power: float,
    alpha: float,
    utts_per_speaker: float | None = None,
) -> Plan:
    """A plan per ranked slice of every dimension, from a scored utterance table."""
    usable = (table["status"] == "ok").to_numpy() & (table["ref_words"].fillna(0).to_numpy(dtype=float) > 0)
    rows = table[usable].reset_index(drop=True)
    wer = (rows["errors"].to_numpy(dtype=float)) / rows["ref_words"].to_numpy(dtype=float)
    speaker = cluster_units(rows).to_numpy()
    coder = TagCodes(rows)
    z = z_sum(alpha, power)
    dimensions = []
    for spec in specs:
        coded = slice_codes(rows, spec, coder)
        ranked = [i for i, label in enumerate(coded.labels) if not set(coded.values[i].values()) & UNRANKED]
        group = {i: components(wer[coded.codes == i], speaker[coded.codes == i]) for i in ranked}
        slices = []
        for i in ranked:
            mine = coded.codes == i
            speakers, utterances = len(np.unique(speaker[mine])), int(mine.sum())
            if spec.reference in coded.labels and coded.labels[i] != spec.reference:
                other_mask, other_name = coded.codes == coded.labels.index(spec.reference), spec.reference
            else:
                other_mask = np.isin(coded.codes, [j for j in ranked if j != i])
                other_name = f"rest of {spec.label}"
            other = components(wer[other_mask], speaker[other_mask])
            plan_of = _slice_plan(coded.labels[i], other_name, group[i], other, gap, z, utts_per_speaker)
            per_speaker = utterances / speakers if speakers else 0.0
            slices.append(
                replace(
                    plan_of,
                    speakers=speakers,
                    per_speaker=per_speaker,
                    planned_per_speaker=utts_per_speaker or per_speaker,
                )
            )
        dimensions.append(DimensionPlan(spec.label, slices))
    return Plan(gap, power, alpha, utts_per_speaker, METHOD, dimensions)


def _slice_plan(
    label: str,
    other_name: str,
    own: Components | None,
    other: Components | None,
    gap: float,
    z: float,
    utts_per_speaker: float | None,
) -> SlicePlan:
    if own is None or other is None:  # the caller fills in the slice's real speaker counts
        missing = label if own is None else other_name
        return SlicePlan(
            label,
            other_name,
            0,
            0.0,
            0.0,
            own.between if own else None,
            own.within if own else None,
            note=f"{missing}: fewer than two speakers, or one utterance each; no variance to plan from",
        )
    k = utts_per_speaker or own.per_speaker
    both = own.planned_variance(1, k) + other.planned_variance(1, utts_per_speaker or other.per_speaker)
    known = SlicePlan(
        label,
        other_name,
        own.speakers,
        own.per_speaker,
        k,
        own.between,
        own.within,
        detectable_now=z * math.sqrt(own.variance() + other.variance()),
        need_both=max(MIN_SPEAKERS_PLANNED, math.ceil(both / (gap / z) ** 2)),
    )
    budget = (gap / z) ** 2 - other.variance()
    if budget <= 0:
        note = (
            f"{other_name} alone is too uncertain to show a {gap * 100:.1f} pp gap: it needs more speakers too "
            f"({known.need_both} in each if both grow alike)"
        )
        return replace(known, note=note)
    need = max(MIN_SPEAKERS_PLANNED, math.ceil(own.planned_variance(1, k) / budget))
    floor = max(MIN_SPEAKERS_PLANNED, math.ceil(own.between / budget))
    return replace(known, need=need, record_more=max(0, need - own.speakers), floor=floor)


def simulate(
    rng: np.random.Generator,
    groups: Sequence[tuple[str, float, int, int, Components]],
    *,
    words: int = 100,
    tag: str = "accent",
) -> pd.DataFrame:
    """A scored utterance table drawn from the planning model: per group ``(value, mean WER,
    speakers, utterances per speaker, components)``, speaker rates ``mean + N(0, between)`` and
    utterance rates ``rate + N(0, within)``, clipped to [0, 1], as errors over ``words`` words."""
    frames = []
    for value, mean, speakers, per_speaker, parts in groups:
        rates = mean + rng.normal(0, math.sqrt(parts.between), speakers)
        utterance = np.repeat(rates, per_speaker) + rng.normal(0, math.sqrt(parts.within), speakers * per_speaker)
        errors = np.rint(np.clip(utterance, 0, 1) * words).astype(np.int64)
        speaker = np.repeat([f"{value}-{s}" for s in range(speakers)], per_speaker)
        frames.append(
            pd.DataFrame(
                {
                    "id": [f"{sp}-{u % per_speaker}" for u, sp in enumerate(speaker)],
                    "speaker": speaker,
                    tag: value,
                    "status": "ok",
                    "hits": words - errors,
                    "substitutions": errors,
                    "deletions": 0,
                    "insertions": 0,
                    "ref_words": words,
                    "errors": errors,
                    "wer": errors / words,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
