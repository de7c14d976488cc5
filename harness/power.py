"""How many speakers a slice needs before a WER gap that matters would be starred (★).

The planning model (docs/coverage.md, *Planning*) is the linearised variance of the *pooled* WER
R = Σa/Σb over speakers (a: a speaker's errors, b: their reference words), the same quantity the
run's intervals and ★ are built on. Speaker g's errors around the slice's rate have variance
``σ_b² b_g² + σ_w² b_g``: σ_b² is the variance of speakers' own rates (between speakers), σ_w²
the per-word variance within a speaker. Both are estimated per slice from a finished run by the
method of moments (within from utterances around their speaker's rate, between from the
speaker-level residuals the run's cluster-robust interval uses). As recorded,
``Var R = (σ_b² Σb² + σ_w² Σb)/(Σb)²``; for ``n`` speakers who record like the pilot's (mean words
W per speaker, unevenness c = n Σb²/(Σb)²) it is ``(σ_b² c + σ_w²/W)/n``.

A ★ needs the dimension's test to reject after Holm and the slice's interval to exclude 0. The
plan takes the worst case of Holm (α/m over the m dimensions with two or more slices) and the
dimension test as a χ² test with K − 1 degrees of freedom (K slices): a gap Δ against the
comparison group is found with probability ``power`` when the noncentrality
``Δ² / (V_slice(n) + V_comparison)`` reaches λ*, where ``P(χ²_{K−1}(λ*) > χ²_{K−1, 1−α/m}) = power``.
Solving for ``n`` gives the speakers a slice needs; more utterances per speaker only shrink the
within term, so there is a floor no number of utterances gets under. The plan is validated
against the run's own ★ on data from a different generator (benchmarks/calibration.py --only plan).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np
import pandas as pd
from scipy import optimize, stats

from harness.slices import UNRANKED, SliceSpec, TagCodes, slice_codes
from harness.stats import cluster_units

MIN_SPEAKERS_PLANNED = 2
PILOT_CONFIDENCE = 0.9  # plan with this upper confidence bound of the pilot's variances (measured)


@dataclass(frozen=True)
class Components:
    """Variance components of a group's pooled WER: per-word error variance between speakers'
    own rates (σ_b²) and within a speaker (σ_w²), with the recording that was seen."""

    speakers: int
    utterances: int
    words: float  # Σ b: reference words
    rate: float  # pooled WER
    between: float  # σ_b²: variance of speakers' own rates
    within: float  # σ_w²: per-word variance of errors within a speaker
    squared_words: float  # Σ b²: how unevenly the speakers recorded
    pooled_speakers: int = 0  # > 0: σ_b² comes from the dimension's pooled spread over this many speakers

    @property
    def per_speaker(self) -> float:
        """Mean utterances per speaker."""
        return self.utterances / self.speakers

    @property
    def words_per_utterance(self) -> float:
        return self.words / self.utterances

    def variance(self) -> float:
        """Variance of the group's pooled WER as recorded."""
        return (self.between * self.squared_words + self.within * self.words) / self.words**2

    def planned_variance(self, speakers: float, per_speaker: float | None = None) -> float:
        """Variance over ``speakers`` who record like this group's speakers (``per_speaker``
        None), or who each record ``per_speaker`` utterances of the usual length (evenly)."""
        if per_speaker is None:
            unevenness = self.speakers * self.squared_words / self.words**2
            words = self.words / self.speakers
        else:
            unevenness, words = 1.0, per_speaker * self.words_per_utterance
        return (self.between * unevenness + self.within / words) / speakers


    def inflated(self, confidence: float | None = None) -> Components:
        """The components scaled to the upper ``confidence`` bound of a variance estimated from
        this many speakers: (G − 1) / χ²_{G−1, 1−confidence} (normal theory)."""
        confidence = PILOT_CONFIDENCE if confidence is None else confidence
        speakers = max(self.speakers, self.pooled_speakers)
        if confidence <= 0.5 or speakers < 2:
            return self
        factor = (speakers - 1) / stats.chi2.ppf(1 - confidence, speakers - 1)
        return replace(self, between=self.between * factor, within=self.within * factor)


    def at_least(self, spread: tuple[float, int] | None) -> Components:
        """σ_b² no smaller than ``spread``'s relative between-speaker variance at this group's rate
        (a few speakers rarely show a slice's tail; the dimension's pooled speakers do more often),
        with the pooled speaker count behind it where that is the larger."""
        if spread is None:
            return self
        relative, speakers = spread
        pooled = relative * self.rate**2
        return replace(self, between=pooled, pooled_speakers=speakers) if pooled > self.between else self


def pooled_spread(groups: Sequence[Components]) -> tuple[float, int] | None:
    """The dimension's relative between-speaker variance, σ_b² / rate², pooled over its slices
    (weights: speakers − 1), with the speakers behind it; None without a slice that has errors."""
    usable = [g for g in groups if g.rate > 0 and g.speakers >= 2]
    if not usable:
        return None
    weights = np.array([g.speakers - 1 for g in usable], float)
    relative = np.array([g.between / g.rate**2 for g in usable])
    return float(weights @ relative / weights.sum()), int(sum(g.speakers for g in usable))


def components(errors: np.ndarray, words: np.ndarray, speaker: np.ndarray) -> Components | None:
    """Method-of-moments components of pooled WER from per-utterance errors and words; None with
    fewer than two speakers or no words."""
    codes, uniques = pd.factorize(speaker)
    g = len(uniques)
    if g < 2 or words.sum() <= 0:
        return None
    a = np.bincount(codes, weights=errors, minlength=g)
    b = np.bincount(codes, weights=words, minlength=g)
    own = np.divide(a, b, out=np.zeros(g), where=b > 0)
    # Within: utterances around their own speaker's rate; E = σ_w² Σ_g (b_g − Σ_u N_u² / b_g).
    squares = np.bincount(codes, weights=(errors - own[codes] * words) ** 2, minlength=g)
    dof = (b - np.divide(np.bincount(codes, weights=words**2, minlength=g), b, out=np.zeros(g), where=b > 0)).sum()
    within = float(squares.sum() / dof) if dof > 0 else 0.0
    # Between: the cluster-robust residuals, E ≈ σ_b² Σb² + σ_w² Σb (with the G/(G−1) correction).
    rate = a.sum() / b.sum()
    total = g / (g - 1) * float(((a - rate * b) ** 2).sum())
    between = max(0.0, (total - within * b.sum()) / float((b**2).sum()))
    return Components(g, len(errors), float(b.sum()), float(rate), between, within, float((b**2).sum()))


def noncentrality(alpha: float, power: float, df: int = 1) -> float:
    """λ with P(χ²_df(λ) > its 1 − α quantile) = power."""
    critical = stats.chi2.ppf(1 - alpha, df)
    return float(optimize.brentq(lambda lam: stats.ncx2.sf(critical, df, lam) - power, 1e-9, 1e4))


def z_sum(alpha: float, power: float) -> float:
    """The two-sided normal multiplier z_{1-α/2} + z_power (one comparison, no Holm)."""
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
    detectable_now: float | None = None  # the gap the ★ rule finds with ``power`` now (model-based)
    need: int | None = None  # speakers at planned_per_speaker; None: not reachable by this slice alone
    record_more: int | None = None
    floor: int | None = None  # speakers needed however many utterances each records
    need_both: int | None = None  # speakers in the slice and in its comparison group, both grown alike
    note: str | None = None


@dataclass(frozen=True)
class DimensionPlan:
    name: str
    slices: list[SlicePlan]
    tests: int = 1  # dimensions sharing the Holm correction (m)
    slice_count: int = 2  # K: the χ² test's K − 1 degrees of freedom


@dataclass(frozen=True)
class Plan:
    gap: float
    power: float
    alpha: float
    utts_per_speaker: float | None  # None: each slice keeps its own mean
    method: str
    dimensions: list[DimensionPlan]
    tests: int = 1  # m: dimensions tested (Holm's worst case is α/m)


METHOD = (
    "linearised variance of pooled WER, between- and within-speaker components per slice (method of moments); "
    "★ rule as χ² test with K−1 df at Holm's worst case α/m, against the reference slice or the rest of the "
    "dimension at its current size"
)


def plan(
    table: pd.DataFrame,
    specs: Sequence[SliceSpec],
    *,
    gap: float,
    power: float,
    alpha: float,
    utts_per_speaker: float | None = None,
    min_speakers: int = MIN_SPEAKERS_PLANNED,
) -> Plan:
    """A plan per ranked slice of every dimension, from a scored utterance table."""
    usable = (table["status"] == "ok").to_numpy() & (table["ref_words"].fillna(0).to_numpy(dtype=float) > 0)
    rows = table[usable].reset_index(drop=True)
    errors = rows["errors"].to_numpy(dtype=float)
    words = rows["ref_words"].to_numpy(dtype=float)
    speaker = cluster_units(rows).to_numpy()
    coder = TagCodes(rows)
    coded_all = [slice_codes(rows, spec, coder) for spec in specs]
    ranked_all = [
        [i for i, _ in enumerate(coded.labels) if not set(coded.values[i].values()) & UNRANKED] for coded in coded_all
    ]
    tests = max(1, sum(len(r) >= 2 for r in ranked_all))
    floor_speakers = max(MIN_SPEAKERS_PLANNED, min_speakers)
    dimensions = []
    for spec, coded, ranked in zip(specs, coded_all, ranked_all, strict=True):

        def parts(mask: np.ndarray) -> Components | None:
            return components(errors[mask], words[mask], speaker[mask])

        lam = noncentrality(alpha / tests, power, max(1, len(ranked) - 1))
        group = {i: parts(coded.codes == i) for i in ranked}
        spread = pooled_spread([g for g in group.values() if g is not None])
        group = {i: g.at_least(spread) if g is not None else None for i, g in group.items()}
        slices = []
        for i in ranked:
            mine = coded.codes == i
            speakers, utterances = len(np.unique(speaker[mine])), int(mine.sum())
            if spec.reference in coded.labels and coded.labels[i] != spec.reference:
                other_mask, other_name = coded.codes == coded.labels.index(spec.reference), spec.reference
            else:
                other_mask = np.isin(coded.codes, [j for j in ranked if j != i])
                other_name = f"rest of {spec.label}"
            plan_of = _slice_plan(
                coded.labels[i], other_name, group[i], parts(other_mask), gap, lam, utts_per_speaker, floor_speakers
            )
            per_speaker = utterances / speakers if speakers else 0.0
            slices.append(
                replace(
                    plan_of,
                    speakers=speakers,
                    per_speaker=per_speaker,
                    planned_per_speaker=utts_per_speaker or per_speaker,
                )
            )
        dimensions.append(DimensionPlan(spec.label, slices, tests, len(ranked)))
    return Plan(gap, power, alpha, utts_per_speaker, METHOD, dimensions, tests)


def _slice_plan(
    label: str,
    other_name: str,
    own: Components | None,
    other: Components | None,
    gap: float,
    lam: float,
    utts_per_speaker: float | None,
    min_speakers: int,
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
            note=f"{missing}: fewer than two speakers, or no reference words; no variance to plan from",
        )
    allowed = gap**2 / lam  # the variance of the difference that gives the power
    # A pilot's variances are themselves uncertain, and power is concave in them: plan with an
    # upper confidence bound of each (measured: benchmarks/calibration.py --only plan).
    own_up, other_up = own.inflated(), other.inflated()
    both = own_up.planned_variance(1, utts_per_speaker) + other_up.planned_variance(1, utts_per_speaker)
    known = SlicePlan(
        label,
        other_name,
        own.speakers,
        own.per_speaker,
        utts_per_speaker or own.per_speaker,
        own.between,
        own.within,
        detectable_now=math.sqrt(lam * (own.variance() + other.variance())),
        need_both=max(min_speakers, math.ceil(both / allowed)),
    )
    budget = allowed - other_up.variance()
    if budget <= 0:
        note = (
            f"{other_name} alone is too uncertain to show a {gap * 100:.1f} pp gap: it needs more speakers too "
            f"({known.need_both} in each if both grow alike)"
        )
        return replace(known, note=note)
    need = max(min_speakers, math.ceil(own_up.planned_variance(1, utts_per_speaker) / budget))
    floor = max(min_speakers, math.ceil(own_up.between / budget))
    return replace(known, need=need, record_more=max(0, need - own.speakers), floor=floor)


def simulate(
    rng: np.random.Generator,
    groups: Sequence[tuple[str, float, int, int, Components]],
    *,
    words: int = 100,
    tag: str = "accent",
) -> pd.DataFrame:
    """A scored utterance table drawn from the planning model (for tests of the estimators; the
    plan itself is validated on another generator, benchmarks/calibration.py): per group
    ``(value, mean WER, speakers, utterances per speaker, components)``, speaker rates
    ``mean + N(0, between)`` and utterance rates ``rate + N(0, within / words)``, clipped to [0, 1],
    as errors over ``words`` words."""
    frames = []
    for value, mean, speakers, per_speaker, parts in groups:
        rates = mean + rng.normal(0, math.sqrt(parts.between), speakers)
        noise = rng.normal(0, math.sqrt(parts.within / words), speakers * per_speaker)
        utterance = np.repeat(rates, per_speaker) + noise
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
