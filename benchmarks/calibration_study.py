"""Calibration of the multi-system study's paired statements (issue 27), on calibration.py's generator.

Two systems on the same utterances are the generator's two paired conditions: system A makes the
``clean`` errors, system B those plus the condition's extra ``Poisson(N q_u g_s)`` (speakers hurt
unequally, ``g_s = γ_k exp(τ_k Z' − τ_k²/2)``), so B − A per slice is ``γ_k θ_k`` and the truth of
every figure is analytic (calibration.py's ``truth``):

* ΔWER (B − A) per slice and overall — ``γ_k θ_k`` and its design-weighted mean;
* the gap change of a slice, ``(θ_B,k − θ_B) − (θ_A,k − θ_A)`` = ``Δ_k − Δ`` (target as intervals);
* the worst − best gap change ``ptp(θ + Δ) − ptp(θ)``, the worst-slice change ``max(θ + Δ) −
  max(θ)`` and the change of the gap between A's (estimated) worst and best slices ``Δ_w − Δ_b``
  (simultaneous bounds: the disparity target, ≥ 0.93);
* the false-positive rate of every disparity claim (a slice's gap or A's worst−best pair narrowed /
  widened, "fairer") when B
  changes every slice alike (``study-equal``: equal WER and γ, unequal speaker spread and τ).

``study-narrow`` plants a real narrowing (WER 10 / 15 / 20 %, γ 0.8 / 0.4 / 0.05: B is 18 / 21 / 21 %,
the gap falls from 10 to 3 points); ``study-volume`` is the audit's fixed design (6 speakers × 40
utterances, heavy-tailed, against 60 × 8). Usage (same options as calibration.py)::

    python benchmarks/calibration_study.py --reps 200 --jobs 2 --markdown
    python benchmarks/calibration.py --only study --reps 200      # the same rows, via the main suite
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import calibration as cal  # the generator, targets and tallies: one suite

from harness.study.compare import compare_pair, holm_and_claims, pair_systems

DISPARITY_CLAIMS = ("gap-narrowed", "gap-widened", "pair-narrowed", "pair-widened", "fairer")
SPEAKERS = (5, 10, 20, 60)


def scenarios() -> list[cal.Scenario]:
    out = []
    for g in SPEAKERS:
        out.append(cal.Scenario("study-equal", (
            cal.SliceDesign(0.15, g, tau=0.2), cal.SliceDesign(0.15, g, sigma=0.8, tau=0.8, tails="t3"),
            cal.SliceDesign(0.15, g)), conditions=True))
        out.append(cal.Scenario("study-narrow", (
            cal.SliceDesign(0.10, g, gamma=0.8), cal.SliceDesign(0.15, g, sigma=0.8, tails="t3", gamma=0.4, tau=0.6),
            cal.SliceDesign(0.20, g, gamma=0.05)), conditions=True))
    out.append(cal.Scenario("study-volume", (
        cal.SliceDesign(0.15, 6, 40, 1.0, "t3", tau=0.8), cal.SliceDesign(0.15, 60, 8, 0.4, tau=0.2)),
        conditions=True))
    return out


def measure_study(
    args: argparse.Namespace, res: cal.Results, rng: np.random.Generator, cells: Sequence[cal.Scenario] | None = None
) -> None:
    for sc in cells or scenarios():
        tr = cal.truth(sc)
        label = cal.speaker_label(sc)
        cover = cal.coverage_target(min(s.speakers for s in sc.slices))
        after = tr.slices + tr.delta
        gap_truth = float(np.ptp(after) - np.ptp(tr.slices))
        worst_truth = float(after.max() - tr.slices.max())
        null = sc.name == "study-equal"
        for rep in range(args.reps):
            table = cal.generate(sc, rng)
            tables = {name: table[table["condition"] == name].drop(columns="condition") for name in cal.CONDITIONS}
            options = cal.options(args, seed=rep)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                coded, _ = pair_systems(tables)
                pair = compare_pair(coded, 0, 1, list(cal.SPECS), options)
                (pair,), claims = holm_and_claims("sim", [pair], list(cal.SPECS), coded, options)
            overall = cal.covers(pair.delta.ci, tr.delta_overall)
            res.add("study ΔWER (overall)", "pooled", sc.name, label, cover, overall)
            accent = pair.dimensions[0]
            for sl in accent.slices:
                k = int(sl.slice[1:])
                res.add("study ΔWER per slice", "pooled", sc.name, label, cover, cal.covers(sl.delta.ci, tr.delta[k]))
                res.add("study gap change per slice", "pooled", sc.name, label, cover,
                        cal.covers(sl.gap_change.ci, tr.delta[k] - tr.delta_overall))
            if accent.ranked == len(sc.slices):
                res.add("study worst−best gap change", "pooled", sc.name, label, cal.DISPARITY,
                        cal.covers(accent.gap_change.ci, gap_truth))
                res.add("study worst-slice change", "pooled", sc.name, label, cal.DISPARITY,
                        cal.covers(accent.worst_change.ci, worst_truth))
                if accent.worst_a is not None and accent.best_a is not None:
                    w, b = int(accent.worst_a[1:]), int(accent.best_a[1:])
                    res.add("study A's worst−best pair change", "pooled", sc.name, label, cal.DISPARITY,
                            cal.covers(accent.pair_change.ci, float(tr.delta[w] - tr.delta[b])))
            disparity = [c for c in claims if c.kind in DISPARITY_CLAIMS]
            if null:
                res.add("study disparity claim (any, Holm)", "pooled", sc.name, label, cal.FPR, bool(disparity))
            elif sc.name == "study-narrow":
                res.add("study 'fairer' found (power)", "pooled", sc.name, label, cal.Target(0.0, 1.0, "reported"),
                        any(c.kind == "fairer" and c.dimension == "accent" for c in claims))
                res.add("study 'narrows A's worst−best gap' found (power)", "pooled", sc.name, label,
                        cal.Target(0.0, 1.0, "reported"),
                        any(c.kind == "pair-narrowed" and c.dimension == "accent" for c in claims))
                worst = f"a{int(np.argmax(tr.slices))}"  # its gap to the overall: +5 points under A, +1 under B
                res.add("study 'narrows the worst slice's gap' found (power)", "pooled", sc.name, label,
                        cal.Target(0.0, 1.0, "reported"),
                        any(c.kind == "gap-narrowed" and c.dimension == "accent" and c.slice == worst for c in claims))
        cal.log.info("study %s %s done", sc.name, label)


def measure_cell(args: argparse.Namespace, index: int) -> cal.Results:
    """One scenario on its own seeded stream (the numbers do not depend on --jobs)."""
    res = cal.Results()
    measure_study(args, res, np.random.default_rng([args.seed, 99, index]), [scenarios()[index]])
    return res


def run(args: argparse.Namespace) -> list[dict[str, object]]:
    cells = [i for i, c in enumerate(scenarios()) if cal._wanted(c, args.speakers)]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            parts = list(pool.map(measure_cell, [args] * len(cells), cells))
    else:
        parts = [measure_cell(args, i) for i in cells]
    res = cal.Results()
    for part in parts:
        res.merge(part)
    return res.table()


def main(argv: Sequence[str] | None = None) -> int:
    args = cal.parse(argv)
    started = time.perf_counter()
    rows = run(args)
    print(cal.render(rows, args.markdown))
    fails = sum(r["verdict"] == "FAIL" for r in rows)
    elapsed = time.perf_counter() - started
    print(f"\n{len(rows)} rows, {fails} FAIL; {elapsed:.0f} s (reps {args.reps}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
