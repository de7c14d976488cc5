"""Calibration suite: does every uncertainty statement asrfair prints hold its nominal rate?

Datasets are drawn from a generator that is deliberately *not* the model of any method under test
(harness/stats/power.py assumes additive normal speaker effects; the bootstrap and the tests assume
nothing parametric but are sensitive to skew, few speakers and unequal clusters):

* speaker error rate ``p_s = min(b_k · exp(σ_k Z_s), 0.8)`` with ``Z_s`` standard normal
  (log-normal rates) or Student-t(3) scaled to unit variance (heavy tails), ``σ_k`` per slice;
* utterances per speaker ``1 + NegBin(2, mean m_k − 1)`` (uneven recording), words per utterance
  ``1 + Poisson(λ_u)`` with ``λ_u`` log-normal around 8 (about 2–30 words);
* a per-utterance ``noise`` tag (quiet/noisy), its share varying by speaker (Beta(2, 2)), that
  multiplies the rate by ``m_noise`` (1 under the null), so noise varies *within* speakers;
* a speaker-level ``device`` tag independent of everything (a second null dimension for Holm);
* per-utterance rate ``q_u ~ Beta(κ r_u, κ(1 − r_u))`` around ``r_u = p_s · m_noise`` (κ = 20);
  substitutions + deletions ``~ Binomial(N, 0.8 q_u)``, insertions ``~ Poisson(0.2 N q_u)`` (so
  errors can exceed words); 3 % filler-only utterances: no reference words, a few insertions;
* conditions (paired): the condition's extra errors ``~ Poisson(N q_u g_s)``,
  ``g_s = γ_k · exp(τ_k Z'_s − τ_k²/2)`` (speakers degrade unequally).

Estimands (computed analytically, by numerical integration over ``Z``; no simulation): words and
utterance counts are independent of the rates and ``E[errors | N, q] = N q`` for ``N > 0``, so the
population pooled WER of slice k, ``E[errors]/E[words]`` over utterances with words, equals
``E[q] = E[m_noise] · E[min(b_k e^{σ_k Z}, 0.8)]``; the speaker-mean (expected own WER of a speaker
of the slice) and the utterance-mean (expected WER of an utterance with words) have the same value.
Filler-only utterances have no reference words and are outside every estimand. A dimension's overall
is the design-weighted mean of its slices' values (words ∝ speakers × utterances per speaker for
pooled and utterance-mean, speakers for speaker-mean); vs-overall, vs-reference, the gap
``max − min``, the ratio ``max / min`` and ``max_k(θ_k − overall)`` follow from these. ΔWER under a
condition is ``γ_k E[q]``. Rate-model ratios are ratios of the slices' ``E[q]`` (the generator is
exactly log-linear in accent × noise, so the Poisson GEE's population target is that ratio).

Each figure is measured on ``--reps`` datasets per scenario and speaker count, calling the product's
public functions exactly as the pipeline does (``summarise_aggregates`` with ``SliceSpec``s,
``degradation``, ``fit_rate_model``, ``plan``), and printed with its Monte-Carlo standard error
``sqrt(p(1 − p)/n)``. Inside the simulation ``--bootstrap`` (default 400) sets the bootstrap
replicates where a method still resamples and ``--permutations`` (default 400, not the product's
1000) the test replicates: a p-value ``(1 + #{T* ≥ T})/(1 + B)`` has its size at any ``B``, so this
changes power a little and size not beyond the tests' own approximation. ``--jobs N`` runs cells
in parallel; every cell has its own seeded stream, so the numbers do not depend on ``--jobs`` or
``--only``. Usage::

    python benchmarks/calibration.py [--quick] [--reps N] [--seed S] [--only FIGURE] [--markdown]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd
from scipy import integrate, optimize, stats

from harness.stats.by_slice import StatsOptions, summarise_aggregates
from harness.stats.degradation import degradation
from harness.stats.power import plan
from harness.stats.rate_model import fit_rate_model
from harness.stats.slices import SliceSpec

log = logging.getLogger("calibration")

CAP = 0.8  # speaker rates are clipped here so that heavy tails keep a finite mean
KAPPA = 20.0  # Beta concentration of the per-utterance rate around the speaker's rate
INSERTION_SHARE = 0.2
FILLER_SHARE = 0.03
WORDS_MEAN = 8.0
ALPHA = 0.05
AGGREGATE_NAMES = ("pooled", "speaker-mean", "utterance-mean")
SPECS = (
    SliceSpec(by=("accent",), reference="a0"),
    SliceSpec(by=("device",)),
    SliceSpec(by=("noise",)),
    SliceSpec(by=("accent", "noise")),
)
CONDITIONS = ("clean", "degraded")


# ---------------------------------------------------------------- generator


@dataclass(frozen=True)
class SliceDesign:
    """One accent: its true pooled WER (before noise), speakers, mean utterances per speaker,
    log-scale spread of speaker rates and their tail (normal or t3), and condition degradation."""

    wer: float
    speakers: int
    utts: float = 10.0
    sigma: float = 0.5
    tails: str = "normal"  # normal | t3
    gamma: float = 0.5  # condition's extra errors per error
    tau: float = 0.4  # spread of the degradation across speakers (log scale)

    def base(self) -> float:
        """b_k such that E[min(b e^{σZ}, CAP)] = wer."""
        return base_for(self.wer, self.sigma, self.tails)


@dataclass(frozen=True)
class Scenario:
    name: str
    slices: tuple[SliceDesign, ...]
    noise_effect: float = 1.0  # rate multiplier of noisy utterances
    conditions: bool = False

    def with_speakers(self, g: int | None) -> Scenario:
        if g is None:
            return self
        return dataclasses.replace(self, slices=tuple(dataclasses.replace(s, speakers=g) for s in self.slices))


def _z_density(tails: str) -> Callable[[float], float]:
    if tails == "t3":
        scale = 1 / math.sqrt(3.0)  # t3 has variance 3: scaled to unit variance
        return lambda z: stats.t.pdf(z / scale, 3) / scale
    return stats.norm.pdf


def clipped_mean(base: float, sigma: float, tails: str) -> float:
    """E[min(base · e^{σZ}, CAP)] by numerical integration."""
    if sigma == 0:
        return min(base, CAP)
    density = _z_density(tails)
    knot = math.log(CAP / base) / sigma
    below, _ = integrate.quad(lambda z: base * math.exp(sigma * z) * density(z), -np.inf, knot, limit=200)
    above, _ = integrate.quad(density, knot, np.inf, limit=200)
    return below + CAP * above


@cache
def base_for(wer: float, sigma: float, tails: str) -> float:
    return float(optimize.brentq(lambda b: clipped_mean(b, sigma, tails) - wer, 1e-6, CAP))


def _z(rng: np.random.Generator, tails: str, size: int) -> np.ndarray:
    if tails == "t3":
        return rng.standard_t(3, size) / math.sqrt(3.0)
    return rng.standard_normal(size)


def generate(scenario: Scenario, rng: np.random.Generator) -> pd.DataFrame:
    """One scored utterance table (rows as harness.scoring.table makes them; with conditions, one row per
    utterance per condition, tagged ``condition``)."""
    frames = []
    first = 0
    for k, design in enumerate(scenario.slices):
        g = design.speakers
        p = np.minimum(design.base() * np.exp(design.sigma * _z(rng, design.tails, g)), CAP)
        counts = 1 + rng.negative_binomial(2, 2 / (2 + design.utts - 1), g) if design.utts > 1 else np.ones(g, int)
        spk = np.repeat(np.arange(g), counts)
        n = spk.size
        noisy = rng.random(n) < rng.beta(2, 2, g)[spk]
        words = 1 + rng.poisson(WORDS_MEAN * np.exp(0.5 * rng.standard_normal(n) - 0.125))
        filler = rng.random(n) < FILLER_SHARE
        words[filler] = 0
        r = p[spk] * np.where(noisy, scenario.noise_effect, 1.0)
        q = rng.beta(KAPPA * r, KAPPA * (1 - r))
        non_insert = rng.binomial(words, (1 - INSERTION_SHARE) * q)
        subs = rng.binomial(non_insert, 0.7)
        ins = np.where(filler, rng.poisson(0.3 + 2 * p[spk]), rng.poisson(INSERTION_SHARE * words * q))
        frame = pd.DataFrame(
            {
                "speaker": np.char.add(f"a{k}-s", (first + spk).astype(str)),
                "accent": f"a{k}",
                "device": np.where(rng.random(g) < 0.5, "phone", "laptop")[spk],
                "noise": np.where(noisy, "noisy", "quiet"),
                "substitutions": subs,
                "deletions": non_insert - subs,
                "insertions": ins,
                "ref_words": words,
            }
        )
        if scenario.conditions:
            g_s = design.gamma * np.exp(design.tau * rng.standard_normal(g) - design.tau**2 / 2)
            frame["extra"] = rng.poisson(words * q * g_s[spk])
        frames.append(frame)
        first += g
    table = pd.concat(frames, ignore_index=True)
    table["id"] = np.char.add("u", np.arange(len(table)).astype(str))
    if scenario.conditions:
        clean = table.drop(columns="extra").assign(condition=CONDITIONS[0])
        worse = table.assign(substitutions=table["substitutions"] + table["extra"], condition=CONDITIONS[1])
        table = pd.concat([clean, worse.drop(columns="extra")], ignore_index=True)
    return _scored(table)


def _scored(table: pd.DataFrame) -> pd.DataFrame:
    table["errors"] = table["substitutions"] + table["deletions"] + table["insertions"]
    table["hits"] = table["ref_words"] - table["substitutions"] - table["deletions"]
    table["status"] = "ok"
    table["language"] = "en"
    words = table["ref_words"].astype("Float64")
    table["wer"] = (table["errors"].astype("Float64") / words).where(table["ref_words"] > 0, np.nan)
    return table


# ---------------------------------------------------------------- estimands


@dataclass(frozen=True)
class Truth:
    """Population values per accent slice (identical for the three aggregates, see the module doc)
    and the accent dimension's overall under each aggregate."""

    slices: np.ndarray
    overall: dict[str, float]
    delta: np.ndarray  # ΔWER under the condition per slice
    delta_overall: float


def truth(scenario: Scenario) -> Truth:
    noise_mean = 0.5 * (1 + scenario.noise_effect)
    wers = np.array([s.wer for s in scenario.slices]) * noise_mean
    speakers = np.array([s.speakers for s in scenario.slices], float)
    volume = speakers * np.array([s.utts for s in scenario.slices])
    overall = {
        "pooled": float(volume @ wers / volume.sum()),
        "utterance-mean": float(volume @ wers / volume.sum()),
        "speaker-mean": float(speakers @ wers / speakers.sum()),
    }
    delta = wers * np.array([s.gamma for s in scenario.slices])
    return Truth(wers, overall, delta, float(volume @ delta / volume.sum()))


# ---------------------------------------------------------------- scenarios

SPEAKER_COUNTS = (3, 5, 10, 20, 60)


def scenarios() -> dict[str, Scenario]:
    """Null scenarios have equal true WER in every accent (tests and ★ must stay at α)."""
    return {
        "equal": Scenario("equal", tuple(SliceDesign(0.15, 10) for _ in range(4))),
        "spread": Scenario(
            "spread",
            (SliceDesign(0.15, 10, sigma=0.3), SliceDesign(0.15, 10, sigma=0.6), SliceDesign(0.15, 10, 10, 1.0, "t3")),
        ),
        "gap": Scenario(
            "gap",
            (SliceDesign(0.12, 10), SliceDesign(0.15, 10), SliceDesign(0.15, 10, sigma=0.8, tails="t3"),
             SliceDesign(0.20, 10)),
        ),
        # Fixed designs from the audit (speaker counts are part of the design).
        "volume": Scenario("volume", (SliceDesign(0.15, 6, 40), SliceDesign(0.15, 60, 8))),
        "volume+spread": Scenario(
            "volume+spread", (SliceDesign(0.15, 6, 40, 1.0, "t3"), SliceDesign(0.15, 60, 8, 0.4))
        ),
    }


def sweep() -> list[Scenario]:
    """(scenario at each speaker count) for the swept ones, the fixed designs once."""
    out = []
    for name, sc in scenarios().items():
        if name.startswith("volume"):
            out.append(sc)
        else:
            out.extend(sc.with_speakers(g) for g in SPEAKER_COUNTS)
    return out


def condition_scenarios() -> list[Scenario]:
    """Paired conditions: equal degradation everywhere (▲ null), but unequal spread and volume; and
    `cond-gap`, where slices differ and degrade unequally (excess, gap change not 0)."""
    out = []
    for g in SPEAKER_COUNTS:
        out.append(
            Scenario(
                "cond-equal",
                (SliceDesign(0.15, g, tau=0.2), SliceDesign(0.15, g, sigma=0.8, tau=0.8, tails="t3"),
                 SliceDesign(0.15, g)),
                conditions=True,
            )
        )
    out.append(
        Scenario(
            "cond-volume", (SliceDesign(0.15, 6, 40, 1.0, "t3", tau=0.8), SliceDesign(0.15, 60, 8, 0.4, tau=0.2)),
            conditions=True,
        )
    )
    # Not null: slices differ under the reference and degrade unequally (the gap grows 8 → 19.2 points).
    for g in (10, 20, 60):
        out.append(
            Scenario(
                "cond-gap",
                (SliceDesign(0.12, g, gamma=0.4, tau=0.2), SliceDesign(0.15, g, sigma=0.8, tails="t3", tau=0.8),
                 SliceDesign(0.20, g, gamma=0.8)),
                conditions=True,
            )
        )
    return out


# ---------------------------------------------------------------- tallies


@dataclass
class Tally:
    """Hits out of trials, with a Monte-Carlo standard error."""

    hits: int = 0
    trials: int = 0
    missing: int = 0  # no interval / no figure given

    def add(self, hit: bool | None) -> None:
        if hit is None:
            self.missing += 1
        else:
            self.trials += 1
            self.hits += bool(hit)

    @property
    def rate(self) -> float:
        return self.hits / self.trials if self.trials else float("nan")

    @property
    def se(self) -> float:
        p = self.rate
        return math.sqrt(max(p * (1 - p), 1.0 / max(self.trials, 1)) / self.trials) if self.trials else float("nan")


@dataclass(frozen=True)
class Target:
    low: float
    high: float
    text: str

    def verdict(self, t: Tally) -> str:
        if not t.trials:
            return "n/a"
        if self.low <= t.rate <= self.high:
            return "pass"
        if self.low - 2 * t.se <= t.rate <= self.high + 2 * t.se:
            return "pass~"  # outside only by Monte-Carlo error
        return "FAIL"


def coverage_target(speakers: int) -> Target:
    if speakers >= 10:
        return Target(0.93, 0.97, "0.93–0.97")
    return Target(0.90, 1.0, "≥0.90")


FPR = Target(0.0, ALPHA + 0.01, f"≤{ALPHA + 0.01:.2f}")
DISPARITY = Target(0.93, 1.0, "≥0.93")
POWER = Target(0.75, 0.85, "0.75–0.85")
# `plan` says it is conservative (harness.report.coverage): the ★ must come with the stated power or more.
CONSERVATIVE_POWER = Target(0.80, 1.0, "≥0.80")
# Power at a smaller gap than printed: a lower bound on the power at the printed one, no target.
LOWER_BOUND = Target(0.0, 1.0, "(bound)")


@dataclass
class Results:
    """Tallies keyed by (figure, method, scenario, speakers) with their target."""

    rows: dict[tuple[str, str, str, str], tuple[Tally, Target]] = field(default_factory=dict)
    notes: dict[tuple[str, str, str, str], str] = field(default_factory=dict)

    def add(self, figure: str, method: str, scenario: str, speakers: object, target: Target, hit: bool | None) -> None:
        key = (figure, method, scenario, str(speakers))
        if key not in self.rows:
            self.rows[key] = (Tally(), target)
        self.rows[key][0].add(hit)

    def merge(self, other: Results) -> None:
        for key, (tally, target) in other.rows.items():
            mine = self.rows.setdefault(key, (Tally(), target))[0]
            mine.hits, mine.trials, mine.missing = (
                mine.hits + tally.hits, mine.trials + tally.trials, mine.missing + tally.missing
            )
        self.notes.update(other.notes)

    def table(self) -> list[dict[str, object]]:
        out = []
        for (figure, method, scenario, speakers), (tally, target) in self.rows.items():
            out.append(
                {
                    "figure": figure,
                    "method": method,
                    "scenario": scenario,
                    "speakers": speakers,
                    "target": target.text,
                    "measured": tally.rate,
                    "mc_se": tally.se,
                    "n": tally.trials,
                    "missing": tally.missing,
                    "verdict": target.verdict(tally),
                    "note": self.notes.get((figure, method, scenario, speakers), ""),
                }
            )
        return out


# ---------------------------------------------------------------- reading the product's results
# Robust to small changes of the result dataclasses: fields are read with getattr, an interval
# may be None or have None ends (shown as "–"), and new fields are ignored.


def interval(value: object) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        low, high = value[0], value[1]  # type: ignore[index]
    except (TypeError, IndexError, KeyError):
        low, high = getattr(value, "low", None), getattr(value, "high", None)
    if low is None or high is None:
        return None
    return float(low), float(high)


def covers(value: object, truth_value: float) -> bool | None:
    ci = interval(value)
    if ci is None:
        return None
    return ci[0] - 1e-12 <= truth_value <= ci[1] + 1e-12


def above_zero(value: object) -> bool:
    ci = interval(value)
    return ci is not None and ci[0] > 0


def significant(test: object) -> bool:
    return bool(test is not None and getattr(test, "significant", False))


def p_holm(test: object) -> float | None:
    value = getattr(test, "p_holm", None) if test is not None else None
    return None if value is None else float(value)


def options(args: argparse.Namespace, **extra: object) -> StatsOptions:
    """StatsOptions with the simulation's replicate counts; fields the product lacks are skipped."""
    names = {f.name for f in dataclasses.fields(StatsOptions)}
    wanted = {"bootstrap": args.bootstrap, "permutations": args.permutations, "seed": 0, **extra}
    return StatsOptions(**{k: v for k, v in wanted.items() if k in names})


def speaker_label(sc: Scenario) -> str:
    counts = sorted({s.speakers for s in sc.slices})
    if len(counts) == 1:
        return str(counts[0])
    return "+".join(f"{s.speakers}×{s.utts:g}" for s in sc.slices)


# ---------------------------------------------------------------- figures


def measure_slices(
    args: argparse.Namespace, res: Results, rng: np.random.Generator, cells: Sequence[Scenario] | None = None
) -> None:
    """One summarise_aggregates per dataset: slice intervals (3 aggregates), vs-overall,
    vs-reference, disparity (gap, ratio, worst-vs-overall), ★ and dimension tests, Holm."""
    for sc in cells or sweep():
        tr = truth(sc)
        label = speaker_label(sc)
        g_min = min(s.speakers for s in sc.slices)
        cover = coverage_target(g_min)
        null = len(set(tr.slices.round(12))) == 1
        for rep in range(args.reps):
            table = generate(sc, rng)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                agg = summarise_aggregates(table, list(SPECS), options(args, seed=rep))
            for aggregate in AGGREGATE_NAMES:
                block = agg.blocks.get(aggregate)
                if block is None:
                    continue
                accent = block.dimensions[0]
                overall = tr.overall[aggregate]
                res.add("dimension overall interval", aggregate, sc.name, label, cover,
                        covers(getattr(accent, "overall_wer_ci", None), overall))
                for k, s in enumerate(_accent_slices(accent, len(sc.slices))):
                    if s is None:
                        continue
                    res.add("slice interval", aggregate, sc.name, label, cover, covers(s.wer_ci, tr.slices[k]))
                    vs = getattr(s, "vs_overall", None)
                    if vs is not None:
                        res.add(
                            "vs-overall", aggregate, sc.name, label, cover,
                            covers(vs.difference_ci, tr.slices[k] - overall),
                        )
                    ref = getattr(s, "vs_reference", None)
                    if ref is not None and k > 0:
                        res.add(
                            "vs-reference diff", aggregate, sc.name, label, cover,
                            covers(ref.difference_ci, tr.slices[k] - tr.slices[0]),
                        )
                        res.add(
                            "vs-reference ratio", aggregate, sc.name, label, cover,
                            covers(getattr(ref, "ratio_ci", None), tr.slices[k] / tr.slices[0]),
                        )
                _disparity(res, accent, tr, overall, aggregate, sc, label)
                if aggregate != "pooled":
                    continue
                if null:
                    # Every dimension is null here: size of each test and of ★ anywhere, Holm included.
                    for dim in block.dimensions:
                        name = " × ".join(dim.by)
                        res.add("dimension test (Holm)", "pooled", sc.name, label, FPR, significant(dim.test))
                        raw = getattr(dim.test, "p_value", None) if dim.test is not None else None
                        res.add(f"test {name} raw p<α", "pooled", sc.name, label, FPR,
                                None if raw is None else raw < ALPHA)
                    stars = [any(getattr(s, "significantly_worse", False) for s in d.slices) for d in block.dimensions]
                    res.add("★ any slice", "pooled", sc.name, label, FPR, any(stars))
                    res.add("any test (Holm, 4 dims)", "pooled", sc.name, label, FPR,
                            any(significant(d.test) for d in block.dimensions))
                else:
                    # Where accents differ, the accent test is not null; the others still are.
                    for dim in block.dimensions[1:3]:
                        res.add("dimension test (Holm)", "pooled", f"{sc.name}:{dim.name}", label, FPR,
                                significant(dim.test))
        log.info("slices %s %s done", sc.name, label)


def _accent_slices(dimension: object, k: int) -> list[object | None]:
    by_label = {s.label: s for s in dimension.slices}  # type: ignore[attr-defined]
    return [by_label.get(f"a{i}") for i in range(k)]


def _disparity(res: Results, dim: object, tr: Truth, overall: float, aggregate: str, sc: Scenario, label: str) -> None:
    d = getattr(dim, "disparity", None)
    if d is None or getattr(d, "ranked", 0) < 2:
        return
    ranked = [int(s.label[1:]) for s in dim.slices if s.label.startswith("a") and _is_ranked(s)]  # type: ignore[attr-defined]
    if len(ranked) < 2:
        return
    values = tr.slices[ranked]
    res.add("disparity gap", aggregate, sc.name, label, DISPARITY, covers(d.gap_ci, values.max() - values.min()))
    res.add("disparity ratio", aggregate, sc.name, label, DISPARITY, covers(d.ratio_ci, values.max() / values.min()))
    res.add(
        "worst vs overall", aggregate, sc.name, label, DISPARITY,
        covers(d.worst_vs_overall_ci, float((values - overall).max())),
    )
    if values.max() == values.min():
        # Equal WERs: the statement should be able to say "no detectable gap" (lower end ≤ 0).
        ci = interval(d.gap_ci)
        res.add("gap CI reaches 0 (equal WER)", aggregate, sc.name, label, DISPARITY,
                None if ci is None else ci[0] <= 0)


def _is_ranked(s: object) -> bool:
    return bool(getattr(s, "supported", False)) and getattr(s, "wer", None) is not None


def measure_conditions(
    args: argparse.Namespace, res: Results, rng: np.random.Generator, cells: Sequence[Scenario] | None = None
) -> None:
    """Per slice: ΔWER, excess and WER-under-the-condition coverage; per dimension: its ΔWER, the gap
    and ratio under the condition and their change from the reference (disparity targets); in null
    scenarios (equal degradation) ▲ and the interaction test's size."""
    for sc in cells or condition_scenarios():
        tr = truth(sc)
        label = speaker_label(sc)
        cover = coverage_target(min(s.speakers for s in sc.slices))
        null = len(set(np.round([s.gamma for s in sc.slices], 12))) == 1 and len(set(tr.slices.round(12))) == 1
        for rep in range(args.reps):
            table = generate(sc, rng)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = degradation(table, list(SPECS), list(CONDITIONS), {}, options(args, seed=rep))
            if result is None:
                continue
            dims = {d.name: d for d in result.dimensions}
            accent = dims.get("accent") or result.dimensions[0]
            for cs in accent.slices:
                if not cs.label.startswith("a"):
                    continue
                cell = cs.cells[1]
                k = int(cs.label[1:])
                res.add("condition ΔWER", "pooled", sc.name, label, cover, covers(cell.delta_ci, tr.delta[k]))
                res.add("condition excess", "pooled", sc.name, label, cover,
                        covers(cell.excess_ci, tr.delta[k] - tr.delta_overall))
                res.add("condition slice WER", "pooled", sc.name, label, cover,
                        covers(cell.wer_ci, tr.slices[k] + tr.delta[k]))
            if accent.shifts:
                shift = accent.shifts[0]
                res.add("condition ΔWER (dimension)", "pooled", sc.name, label, cover,
                        covers(shift.delta_ci, tr.delta_overall))
                ranked = [int(s.label[1:]) for s in accent.slices if s.label.startswith("a") and s.supported]
                if len(ranked) >= 2 and shift.gap is not None:
                    base, now = tr.slices[ranked], (tr.slices + tr.delta)[ranked]
                    gap0, gap1 = base.max() - base.min(), now.max() - now.min()
                    ratio0, ratio1 = base.max() / base.min(), now.max() / now.min()
                    res.add("condition gap", "pooled", sc.name, label, DISPARITY, covers(shift.gap_ci, gap1))
                    res.add("condition ratio", "pooled", sc.name, label, DISPARITY, covers(shift.ratio_ci, ratio1))
                    res.add("gap change", "pooled", sc.name, label, DISPARITY,
                            covers(shift.gap_change_ci, gap1 - gap0))
                    res.add("ratio change", "pooled", sc.name, label, DISPARITY,
                            covers(shift.ratio_change_ci, ratio1 - ratio0))
            if not null:
                continue
            marks = [getattr(c, "degrades_more", False) for d in result.dimensions for s in d.slices for c in s.cells]
            res.add("▲ any slice", "pooled", sc.name, label, FPR, any(marks))
            tests = [sh.interaction for d in result.dimensions for sh in d.shifts]
            res.add("interaction test (Holm)", "pooled", sc.name, label, FPR, any(significant(t) for t in tests))
        log.info("conditions %s %s done", sc.name, label)


MODEL_CELLS = (*SPEAKER_COUNTS, 1)  # 1: a level with one speaker


def measure_model(
    args: argparse.Namespace, res: Results, rng: np.random.Generator, cells: Sequence[int] | None = None
) -> None:
    """Rate-model (Poisson GEE) interval coverage of accent and noise rate ratios, by speakers per level;
    and that a one-speaker level gets no interval and no p-value."""
    for g in cells or MODEL_CELLS:
        if g == 1:
            _one_speaker_level(args, res, rng)
            continue
        sc = Scenario(
            "model",
            (SliceDesign(0.12, g), SliceDesign(0.15, g, sigma=0.7), SliceDesign(0.12, g, tails="t3")),
            noise_effect=1.2,  # CAP × 1.2 < 1: the rate stays a probability, the model stays log-linear
        )
        noise_mean = 0.5 * (1 + sc.noise_effect)
        rates = truth(sc).slices / noise_mean
        target = coverage_target(g)
        for _ in range(args.reps):
            table = generate(sc, rng)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = fit_rate_model(table, ["accent", "noise"], {"accent": "a0", "noise": "quiet"}, confidence=0.95)
            for e in getattr(fit, "effects", []):
                true_ratio = sc.noise_effect if e.factor == "noise" else rates[int(e.level[1:])] / rates[0]
                res.add(f"rate model CI ({e.factor})", "GEE", "model", str(g), target, covers(e.ci, true_ratio))
        log.info("model %d done", g)


def _one_speaker_level(args: argparse.Namespace, res: Results, rng: np.random.Generator) -> None:
    sc = Scenario("model-1spk", (SliceDesign(0.12, 20), SliceDesign(0.15, 1), SliceDesign(0.12, 20)))
    for _ in range(max(5, args.reps // 10)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_rate_model(generate(sc, rng), ["accent"], {"accent": "a0"}, confidence=0.95)
        for e in fit.effects:
            if e.level == "a1":
                shown = e.p_value is not None or interval(e.ci) is not None
                res.add("1-speaker level shows CI/p", "GEE", "model-1spk", "1", Target(0.0, 0.0, "0"), shown)


def measure_model_covariance(
    args: argparse.Namespace, res: Results, rng: np.random.Generator, cells: Sequence[int] | None = None
) -> None:
    """Why the rate model uses bias-reduced SEs with t(G − 1): the same GEE fitted with each
    covariance (plain or bias-reduced sandwich) and quantile (z, t with G − 1 df), on the model
    scenario. Not part of the default run (``--only model-cov``)."""
    import statsmodels.api as sm

    for g in cells or SPEAKER_COUNTS:
        sc = Scenario(
            "model",
            (SliceDesign(0.12, g), SliceDesign(0.15, g, sigma=0.7), SliceDesign(0.12, g, tails="t3")),
            noise_effect=1.2,
        )
        rates = truth(sc).slices
        log_truth = np.log([rates[1] / rates[0], rates[2] / rates[0], sc.noise_effect])
        target = coverage_target(g)
        for _ in range(args.reps):
            t = generate(sc, rng)
            t = t[t["ref_words"] > 0]
            design = np.column_stack(
                [np.ones(len(t)), t["accent"] == "a1", t["accent"] == "a2", t["noise"] == "noisy"]
            ).astype(float)
            groups = pd.factorize(t["speaker"])[0]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = sm.GEE(
                    t["errors"].to_numpy(float), design, groups=groups, offset=np.log(t["ref_words"].to_numpy(float)),
                    family=sm.families.Poisson(), cov_struct=sm.cov_struct.Independence(),
                )
                for cov in ("robust", "bias_reduced"):
                    fit = model.fit(cov_type=cov)
                    b, se = np.asarray(fit.params)[1:], np.asarray(fit.bse)[1:]
                    for name, q in (("z", stats.norm.ppf(0.975)), ("t(G-1)", stats.t.ppf(0.975, groups.max()))):
                        for j, factor in enumerate(("accent", "accent", "noise")):
                            res.add(f"rate model CI ({factor})", f"{cov}, {name}", "model", str(g), target,
                                    bool(abs(b[j] - log_truth[j]) <= q * se[j]))
        log.info("model-cov %d done", g)


DETECTABLE_CELLS = (10, 20, 60)


def measure_detectable(
    args: argparse.Namespace, res: Results, rng: np.random.Generator, cells: Sequence[int] | None = None
) -> None:
    """Per dataset: read the printed minimum detectable gap (vs overall, slice a0) on a null dataset of
    the design, plant it in the generator (slice a0's WER raised so that its vs-overall estimand is
    that gap), draw a fresh dataset and count ★ on a0. A printed gap the generator cannot reach (a0's
    speaker rates would have to exceed the cap) is planted at the largest gap it can reach instead:
    power there is at most the power at the printed gap, so those datasets count towards a lower
    bound (a row of its own), and the note gives the share that was plantable as printed; datasets
    with no printed gap ("–": none detectable) count as without a figure."""
    for g in cells or DETECTABLE_CELLS:
        base = Scenario("detectable", tuple(SliceDesign(0.15, g) for _ in range(4)))
        key = ("detectable gap power", "★ rule", "detectable", str(g))
        capped_key = ("detectable gap power, capped (lower bound)", "★ rule", "detectable", str(g))
        largest = _largest_plantable(base, 0)
        printed, plantable = [], 0
        for rep in range(args.reps):
            gap = _printed_detectable(args, base, rng, rep)
            if gap is None:
                res.add(*key, POWER, None)
                continue
            printed.append(gap)
            plantable += gap <= largest
            planted = _planted(base, 0, min(gap, largest))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                agg = summarise_aggregates(generate(planted, rng), list(SPECS), options(args, seed=rep))
            s = _accent_slices(agg.blocks["pooled"].dimensions[0], 4)[0]
            star = bool(s is not None and getattr(s, "significantly_worse", False))
            if gap <= largest:
                res.add(*key, POWER, star)
            else:
                res.add(*capped_key, LOWER_BOUND, star)
        if printed:
            q1, q2, q3 = np.percentile(np.array(printed) * 100, [25, 50, 75])
            share = plantable / len(printed)
            res.notes[key] = (
                f"printed gap median {q2:.1f} pp (IQR {q1:.1f}–{q3:.1f}); plantable as printed in {share:.0%}"
            )
            if plantable < len(printed):
                res.notes[capped_key] = f"printed gap above {largest * 100:.1f} pp, planted at {largest * 100:.1f} pp"
        else:
            res.notes[key] = "no gap printed in any dataset (below 20 speakers a slice: too few speakers to state one)"
        log.info("detectable %d done", g)


def _printed_detectable(args: argparse.Namespace, sc: Scenario, rng: np.random.Generator, rep: int) -> float | None:
    """The minimum detectable gap printed for slice a0 on one dataset of ``sc``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agg = summarise_aggregates(generate(sc, rng), list(SPECS), options(args, seed=rep))
    s = _accent_slices(agg.blocks["pooled"].dimensions[0], len(sc.slices))[0]
    return getattr(getattr(s, "vs_overall", None), "min_detectable", None)


def _largest_plantable(sc: Scenario, k: int) -> float:
    """The largest vs-overall gap of slice k the generator can draw (its rate just below the cap's reach)."""
    volume = np.array([s.speakers * s.utts for s in sc.slices], float)
    w = volume / volume.sum()
    others = sum(w[j] * s.wer for j, s in enumerate(sc.slices) if j != k)
    design = sc.slices[k]
    highest = 0.98 * clipped_mean(CAP, design.sigma, design.tails)
    return float(highest * (1 - w[k]) - others)


def _planted(sc: Scenario, k: int, gap: float) -> Scenario | None:
    """Slice k's WER such that its vs-overall (pooled) estimand equals ``gap`` (None: it would
    exceed what the generator can draw)."""
    volume = np.array([s.speakers * s.utts for s in sc.slices], float)
    w = volume / volume.sum()
    others = sum(w[j] * s.wer for j, s in enumerate(sc.slices) if j != k)
    wer = (gap + others) / (1 - w[k])
    design = sc.slices[k]
    # The highest mean the clipped speaker rates can reach (below CAP: rates below the clip).
    if wer >= 0.99 * clipped_mean(CAP, design.sigma, design.tails):
        return None
    slices = list(sc.slices)
    slices[k] = dataclasses.replace(slices[k], wer=wer)
    return dataclasses.replace(sc, slices=tuple(slices))


PLAN_CELLS = (
    ("plan lognormal", SliceDesign(0.15, 10)),
    ("plan t3 spread", SliceDesign(0.15, 10, sigma=0.8, tails="t3")),
)


def measure_plan(
    args: argparse.Namespace,
    res: Results,
    rng: np.random.Generator,
    cells: Sequence[tuple[str, SliceDesign]] | None = None,
) -> None:
    """`plan` from a pilot with 10 speakers in the target accent (30 in each of two others, 10
    utterances each): plant the gap against the rest, grow the target accent to the planned
    speakers, and count ★ on it (averaged over pilots). Where the plan says the target alone
    cannot reach the power, its other figure is checked instead: the target and the rest grown
    to 'need if both grow' each (a second row); a pilot with neither counts as missing."""
    gap = 0.06
    for name, design in cells or PLAN_CELLS:
        others = dataclasses.replace(design, speakers=30)
        pilot_sc = Scenario(name, (dataclasses.replace(design, wer=0.15 + gap), others, others))
        key = ("plan achieved power", "★ rule", name, "pilot 10")
        both_key = ("plan achieved power", "★ rule", f"{name}, both grow", "pilot 10")
        needs, boths = [], []
        for rep in range(args.reps):
            pilot = generate(pilot_sc, rng)
            result = plan(pilot, [SliceSpec(by=("accent",))], gap=gap, power=0.8, alpha=ALPHA)
            target = next(s for s in result.dimensions[0].slices if s.label == "a0")
            need = getattr(target, "need", None)
            need_both = getattr(target, "need_both", None)
            if need is None and need_both is None:
                res.add(*key, CONSERVATIVE_POWER, None)
                continue
            if need is not None:
                needs.append(need)
                # the rest keeps its size; the gap is against the rest (the plan's comparison)
                grown, which = _planted_vs_rest(pilot_sc, need, gap), key
            else:
                boths.append(need_both)
                grown, which = _planted_vs_rest(pilot_sc, need_both, gap, rest=need_both), both_key
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                agg = summarise_aggregates(generate(grown, rng), [SliceSpec(by=("accent",))], options(args, seed=rep))
            s = _accent_slices(agg.blocks["pooled"].dimensions[0], 3)[0]
            res.add(*which, CONSERVATIVE_POWER, bool(s is not None and getattr(s, "significantly_worse", False)))
        for k, values, what in ((key, needs, "need"), (both_key, boths, "need if both grow")):
            if values:
                q1, q2, q3 = np.percentile(values, [25, 50, 75])
                res.notes[k] = f"{what} median {q2:.0f} (IQR {q1:.0f}–{q3:.0f})"
        log.info("%s done", name)


def _planted_vs_rest(sc: Scenario, speakers: int, gap: float, rest: int | None = None) -> Scenario:
    """The target (slice 0) at ``speakers`` with the gap planted; with ``rest``, the other slices
    grown to that many speakers in all (in proportion, never below their own size)."""
    slices = list(sc.slices)
    slices[0] = dataclasses.replace(slices[0], speakers=speakers, wer=slices[1].wer + gap)
    if rest is not None:
        total = sum(s.speakers for s in slices[1:])
        for j in range(1, len(slices)):
            grown = max(slices[j].speakers, math.ceil(slices[j].speakers * rest / total))
            slices[j] = dataclasses.replace(slices[j], speakers=grown)
    return dataclasses.replace(sc, slices=tuple(slices))


# figure -> (its cells, how to measure a list of them); each cell gets its own seeded stream, so a
# figure's numbers do not depend on --only or --jobs.
FIGURES: dict[str, tuple[Callable[[], Sequence[object]], Callable[..., None]]] = {
    "slices": (sweep, measure_slices),
    "conditions": (condition_scenarios, measure_conditions),
    "model": (lambda: MODEL_CELLS, measure_model),
    "detectable": (lambda: DETECTABLE_CELLS, measure_detectable),
    "plan": (lambda: PLAN_CELLS, measure_plan),
    "model-cov": (lambda: SPEAKER_COUNTS, measure_model_covariance),
}
DEFAULT = ("slices", "conditions", "model", "detectable", "plan")


def _study(name: str) -> Callable[..., object]:
    """``--only study``: the multi-system study's figures, kept in benchmarks/calibration_study.py."""
    import calibration_study  # imports this module: only on use

    return getattr(calibration_study, name)


FIGURES["study"] = (lambda: _study("scenarios")(), lambda *a: _study("measure_study")(*a))


# ---------------------------------------------------------------- output


def render(rows: Iterable[dict[str, object]], markdown: bool) -> str:
    header = ["figure", "method", "scenario", "speakers/slice", "target", "measured ± MC", "n", "verdict", "note"]
    lines = []
    for r in rows:
        measured = "–" if r["n"] == 0 else f"{r['measured']:.3f} ± {r['mc_se']:.3f}"
        note = str(r["note"])
        if r["missing"]:
            note = (note + "; " if note else "") + f"{r['missing']} without interval"
        lines.append([str(r["figure"]), str(r["method"]), str(r["scenario"]), str(r["speakers"]), str(r["target"]),
                      measured, str(r["n"]), str(r["verdict"]), note])
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), *(fmt.format(*line) for line in lines)])


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="few datasets per cell (a smoke run, wide MC error)")
    p.add_argument("--reps", type=int, default=None, help="datasets per scenario × speaker count (default 400)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=list(FIGURES), action="append", help="measure only these figures")
    p.add_argument("--bootstrap", type=int, default=400, help="bootstrap replicates inside the simulation")
    p.add_argument("--permutations", type=int, default=400, help="test replicates inside the simulation")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--jobs", type=int, default=1, help="processes (cells run in parallel; same numbers)")
    p.add_argument("--speakers", type=lambda v: {int(x) for x in v.split(",")}, default=None,
                   help="only these speakers per slice, e.g. 5,20 (fixed designs are always run)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.reps is None:
        args.reps = 40 if args.quick else 400
    return args


def _wanted(cell: object, speakers: set[int] | None) -> bool:
    """Whether --speakers keeps a cell: swept scenarios and speaker-count cells by their count;
    fixed designs (volume, one-speaker level, plan pilots) always."""
    if speakers is None:
        return True
    if isinstance(cell, Scenario):
        label = speaker_label(cell)
        return not label.isdigit() or int(label) in speakers
    if isinstance(cell, int):
        return cell == 1 or cell in speakers
    return True


def measure_cell(args: argparse.Namespace, name: str, index: int) -> Results:
    """One cell of one figure, on its own random stream."""
    cells, measure = FIGURES[name]
    res = Results()
    started = time.perf_counter()
    measure(args, res, np.random.default_rng([args.seed, list(FIGURES).index(name), index]), [cells()[index]])
    log.info("%s cell %d: %.0f s", name, index, time.perf_counter() - started)
    return res


def run(args: argparse.Namespace) -> list[dict[str, object]]:
    tasks = [
        (name, i)
        for name in args.only or DEFAULT
        for i, cell in enumerate(FIGURES[name][0]())
        if _wanted(cell, args.speakers)
    ]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            parts = list(pool.map(measure_cell, [args] * len(tasks), *zip(*tasks, strict=True)))
    else:
        parts = [measure_cell(args, name, i) for name, i in tasks]
    res = Results()
    for part in parts:
        res.merge(part)
    return res.table()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    started = time.perf_counter()
    rows = run(args)
    print(render(rows, args.markdown))
    fails = sum(r["verdict"] == "FAIL" for r in rows)
    print(f"\n{len(rows)} rows, {fails} FAIL; {time.perf_counter() - started:.0f} s "
          f"(reps {args.reps}, bootstrap {args.bootstrap}, permutations {args.permutations}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
