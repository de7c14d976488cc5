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
dimension test as the F test the run makes, K − 1 and ν degrees of freedom (K slices, ν the
test's own denominator df on the pilot, which the comparison slices' speakers bound): a gap Δ
against the comparison group is found with probability ``power`` when the noncentrality
``Δ² / (V_slice(n) + V_comparison)`` reaches λ*, where ``P(F_{K−1,ν}(λ*) > F_{K−1,ν,1−α/m}) = power``.
Solving for ``n`` gives the speakers a slice needs; more utterances per speaker only shrink the
within term, so there is a floor no number of utterances gets under.

The model's need is then checked against the run's own ★ rule (:func:`star_power`): corpora
resampled from the pilot's speakers, the slice grown to the need, the gap planted, the dimension's
test and the vs-overall interval applied; the need grows by half until the simulated ★ reaches the
power, and where even MAX_SPEAKERS do not, the comparison group caps the power and the slice
alone cannot reach it. The plan is validated against the run's own ★ on data from a different
generator (benchmarks/calibration.py --only plan).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np
import pandas as pd
from scipy import optimize, stats

from harness.stats.by_slice import cluster_units, ranked_test, unit_contrasts
from harness.stats.inference import contrasts, ratios, t_quantile
from harness.stats.slices import UNRANKED, SliceSpec, TagCodes, slice_codes

MIN_SPEAKERS_PLANNED = 2
PILOT_CONFIDENCE = 0.9  # plan with this upper confidence bound of the pilot's variances (measured)
SIMULATIONS = 100  # corpora per candidate size (MC error of a power near 0.8: ±0.04)
MAX_SPEAKERS = 2048  # beyond this a slice "cannot reach" the power by itself


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


def noncentrality(alpha: float, power: float, df: int = 1, denominator_df: float | None = None) -> float:
    """λ with P(χ²_df(λ) > its 1 − α quantile) = power; with ``denominator_df`` the same for the
    F test the run makes, P(F_{df, ν}(λ) > its 1 − α quantile) = power (None where no λ gives it)."""
    if denominator_df is None or not math.isfinite(denominator_df):
        critical = stats.chi2.ppf(1 - alpha, df)
        return float(optimize.brentq(lambda lam: stats.ncx2.sf(critical, df, lam) - power, 1e-9, 1e4))
    critical = stats.f.ppf(1 - alpha, df, denominator_df)
    return float(optimize.brentq(lambda lam: stats.ncf.sf(critical, df, denominator_df, lam) - power, 1e-9, 1e6))


def dimension_test_df(
    cluster: np.ndarray, codes: np.ndarray, ranked: list[int], errors: np.ndarray, words: np.ndarray
) -> float | None:
    """The denominator df of the dimension's own test (Welch / cluster-robust F) on the pilot: it is
    counted from the slices' speakers as the run counts them, and the comparison slices keep theirs."""
    test = ranked_test(cluster, codes, ranked, errors, words)
    if test is None or not test.df or len(test.df) < 2 or not math.isfinite(test.df[1]) or test.df[1] <= 0:
        return None
    return float(test.df[1])


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
    "★ rule as an F test with K−1 and the pilot's own test df at Holm's worst case α/m, against the reference "
    "slice or the rest of the dimension at its current size; each need then checked against the run's own ★ rule "
    f"on {SIMULATIONS} corpora per size resampled from the pilot's speakers (spread at its upper bound)"
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
    cluster = pd.factorize(speaker)[0]
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

        lam = noncentrality(
            alpha / tests,
            power,
            max(1, len(ranked) - 1),
            dimension_test_df(cluster, coded.codes, ranked, errors, words) if len(ranked) >= 2 else None,
        )
        group = {i: parts(coded.codes == i) for i in ranked}
        pilot = pilot_sums(errors, words, speaker, coded.codes, ranked)
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
            if plan_of.need is not None or plan_of.need_both is not None:
                compared = [p for p, j in enumerate(ranked) if j != i and other_mask[coded.codes == j].any()]
                # the check resamples the pilot's own recording; other recording scales by the model
                at_pilot = plan_of
                if utts_per_speaker is not None:
                    at_pilot = _slice_plan(
                        coded.labels[i], other_name, group[i], parts(other_mask), gap, lam, None, floor_speakers
                    )
                checked = _checked(at_pilot, pilot, ranked.index(i), compared, gap, power, alpha / tests, i)
                plan_of = checked if at_pilot is plan_of else _rescaled(plan_of, at_pilot, checked)
                plan_of = _within_comparison(plan_of, int(np.unique(speaker[other_mask]).size))
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
            "(see 'need if both grow')"
        )
        return replace(known, note=note)
    need = max(min_speakers, math.ceil(own_up.planned_variance(1, utts_per_speaker) / budget))
    floor = max(min_speakers, math.ceil(own_up.between / budget))
    return replace(known, need=need, record_more=max(0, need - own.speakers), floor=floor)


def _checked(
    plan_of: SlicePlan,
    pilot: Pilot,
    target: int,
    compared: list[int],
    gap: float,
    power: float,
    alpha: float,
    seed: int,
) -> SlicePlan:
    """The model's needs checked against the run's own ★ rule by resampling the pilot's speakers
    (grown until the simulated ★ reaches ``power``)."""
    if plan_of.need_both is not None:
        both, _ = checked_need(pilot, target, compared, plan_of.need_both, gap, power, alpha, 1, seed, both=True)
        plan_of = replace(plan_of, need_both=None if both is None else max(both, plan_of.need_both))
    if plan_of.need is None:
        return plan_of
    need, capped = checked_need(pilot, target, compared, plan_of.need, gap, power, alpha, 1, seed)
    if need is None:
        note = (
            f"{plan_of.compared_with} caps the ★'s power at {capped:.2f} however many speakers {plan_of.label} gets "
            "(simulated from the pilot's speakers): it needs more speakers too"
        )
        return replace(plan_of, need=None, record_more=None, floor=None, note=note)
    need = max(need, plan_of.need)
    return replace(plan_of, need=need, record_more=max(0, need - plan_of.speakers))


def _within_comparison(plan_of: SlicePlan, comparison_speakers: int) -> SlicePlan:
    """No slice-alone figure above the comparison group's own speakers: there the comparison's
    uncertainty, which a pilot measures poorly, decides the power (measured: such figures delivered
    0.25–0.65 instead of 0.80, docs/statistics.md, Calibration); 'need if both grow' is the figure."""
    if plan_of.need is None or plan_of.need <= comparison_speakers:
        return plan_of
    note = (
        f"{plan_of.label} alone would need {plan_of.need} speakers, more than {plan_of.compared_with} has "
        f"({comparison_speakers}): its power then rests on {plan_of.compared_with}'s uncertainty; grow both"
    )
    return replace(plan_of, need=None, record_more=None, floor=None, note=note)


def _rescaled(plan_of: SlicePlan, model: SlicePlan, checked: SlicePlan) -> SlicePlan:
    """``plan_of`` (other recording) grown as the check grew the model's plan at the pilot's recording."""

    def grown(value: int | None, before: int | None, after: int | None) -> int | None:
        return None if value is None else value if not before or not after else math.ceil(value * after / before)

    need_both = grown(plan_of.need_both, model.need_both, checked.need_both)
    if model.need is not None and checked.need is None:
        return replace(plan_of, need=None, record_more=None, floor=None, note=checked.note, need_both=need_both)
    need = grown(plan_of.need, model.need, checked.need)
    return replace(
        plan_of,
        need=need,
        record_more=None if need is None else max(0, need - plan_of.speakers),
        floor=grown(plan_of.floor, model.need, checked.need),
        need_both=need_both,
    )


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




@dataclass(frozen=True)
class Pilot:
    """Per-speaker sums (errors a, words b) of each ranked slice of a dimension, as the pilot recorded."""

    a: list[np.ndarray]
    b: list[np.ndarray]


def pilot_sums(
    errors: np.ndarray, words: np.ndarray, speaker: np.ndarray, codes: np.ndarray, ranked: list[int]
) -> Pilot:
    """Each ranked slice's per-speaker error and word sums."""
    sums_a, sums_b = [], []
    for i in ranked:
        mine = codes == i
        ids, inverse = np.unique(speaker[mine], return_inverse=True)
        sums_a.append(np.bincount(inverse, weights=errors[mine], minlength=ids.size))
        sums_b.append(np.bincount(inverse, weights=words[mine], minlength=ids.size))
    return Pilot(sums_a, sums_b)


def star_power(
    pilot: Pilot,
    target: int,
    compared: list[int],
    speakers: int,
    gap: float,
    alpha: float,
    tests: int,
    seed: int,
    both: bool = False,
) -> float | None:
    """The share of simulated corpora in which slice ``target`` (grown to ``speakers``) gets a ★
    when its true WER is the comparison's plus ``gap``: each corpus resamples every slice's pilot
    speakers with replacement (the target to ``speakers``, the others at their own size), scales
    the target's errors so that its pooled WER is the comparison group's plus the gap
    (multiplicatively: its speakers keep their relative spread), and applies the run's own ★ rule:
    the dimension's test (:func:`harness.stats.by_slice.ranked_test`) at Holm's worst case α/m and the
    vs-overall t interval above 0. With ``both`` the comparison group grows too, to ``speakers``
    in all (its slices in proportion, never below their own size). None when the target or
    comparison has no errors or words."""
    k = len(pilot.a)
    rate_t = pilot.a[target].sum() / max(pilot.b[target].sum(), 1e-300)
    rest_a = sum(pilot.a[j].sum() for j in compared)
    rest_b = sum(pilot.b[j].sum() for j in compared)
    if rate_t <= 0 or rest_b <= 0:
        return None
    scale = (rest_a / rest_b + gap) / rate_t
    # A pilot's speakers understate a slice's spread (power is concave in it): each slice's speakers
    # are spread about its rate by the upper PILOT_CONFIDENCE bound of its variance, as in the model.
    spread_a = []
    for j in range(k):
        g, rate = pilot.a[j].size, pilot.a[j].sum() / max(pilot.b[j].sum(), 1e-300)
        factor = (g - 1) / stats.chi2.ppf(1 - PILOT_CONFIDENCE, g - 1) if g >= 2 else 1.0
        spread_a.append(np.maximum(rate * pilot.b[j] + (pilot.a[j] - rate * pilot.b[j]) * math.sqrt(factor), 0.0))
    rng = np.random.default_rng(seed)
    grow = speakers / max(1, sum(pilot.a[j].size for j in compared)) if both else 1.0
    sizes = [
        speakers if j == target else max(pilot.a[j].size, math.ceil(pilot.a[j].size * grow) if j in compared else 0)
        for j in range(k)
    ]
    column = np.repeat(np.arange(k), sizes)
    cluster = np.arange(column.size)
    coef = unit_contrasts(k, [target], [k])
    q = None
    hits = 0
    for _ in range(SIMULATIONS):
        picks = [rng.integers(0, pilot.a[j].size, sizes[j]) for j in range(k)]
        a = np.concatenate([spread_a[j][p] * (scale if j == target else 1.0) for j, p in enumerate(picks)])
        b = np.concatenate([pilot.b[j][p] for j, p in enumerate(picks)])
        test = ranked_test(cluster, column, list(range(k)), a, b)
        if test is None or not test.p_value <= alpha / tests:
            continue
        r = ratios(np.concatenate([cluster, cluster]), np.concatenate([column, np.full(column.size, k)]),
                   np.concatenate([a, a]), np.concatenate([b, b]), column.size, k)
        c = contrasts(r, coef)
        if not (c.se[0] > 0 and np.isfinite(c.df[0])):
            continue
        q = t_quantile(1 - alpha / 2, c.df[0])
        hits += bool(r.values[target] - r.values[k] - float(q) * c.se[0] > 0)
    return hits / SIMULATIONS


def checked_need(
    pilot: Pilot,
    target: int,
    compared: list[int],
    start: int,
    gap: float,
    power: float,
    alpha: float,
    tests: int,
    seed: int,
    both: bool = False,
) -> tuple[int | None, float | None]:
    """The model's need, checked against the ★ rule by :func:`star_power` and grown by half until the
    simulated power reaches ``power``; (None, the power at MAX_SPEAKERS) when even that many
    speakers do not reach it (the comparison group caps the power); ``start`` itself, unchecked,
    from MAX_SPEAKERS up."""
    n = max(2, start)
    if n >= MAX_SPEAKERS:  # beyond what the check simulates in seconds: the model's figure stands
        return n, None
    top = MAX_SPEAKERS
    while n < top:
        got = star_power(pilot, target, compared, n, gap, alpha, tests, seed, both)
        if got is None or got >= power:
            return n, None
        n = math.ceil(n * 1.5)
    got = star_power(pilot, target, compared, top, gap, alpha, tests, seed, both)
    return (top, None) if got is None or got >= power else (None, got)
