"""Fast subset of benchmarks/calibration_study.py (issue 27): the study's paired intervals (ΔWER between
systems, gap change per slice, worst − best gap change, the change between A's worst and best
slices) cover their analytic truth, and no disparity
claim is made when two systems change every slice alike. Tolerances: 3 Monte-Carlo standard errors
at the target (tests/test_calibration.py); the full table is in docs/study.md."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
from conftest import REPO
from test_calibration import args, tolerance


def load_study_calibration():
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("calibration_study", REPO / "benchmarks" / "calibration_study.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cs = load_study_calibration()


def rows(name: str, speakers: int, reps: int, seed: int) -> dict[str, dict]:
    cell = next(c for c in cs.scenarios() if c.name == name and min(s.speakers for s in c.slices) == speakers)
    res = cs.cal.Results()
    cs.measure_study(args(reps), res, np.random.default_rng(seed), [cell])
    return {r["figure"]: r for r in res.table()}


def test_paired_intervals_cover_a_planted_narrowing():
    """WER 10/15/20 % under A; B adds 80/40/5 % more errors per slice: the gap falls from 10 to 3 points."""
    got = rows("study-narrow", 20, 8, seed=1)
    for figure in ("study ΔWER per slice", "study gap change per slice"):
        r = got[figure]  # 8 datasets × 3 slices
        assert r["n"] == 24 and r["measured"] >= 0.93 - tolerance(0.93, r["n"]), r
    for figure in ("study worst−best gap change", "study A's worst−best pair change"):
        r = got[figure]
        assert r["n"] == 8 and r["measured"] >= 0.93 - tolerance(0.93, r["n"]), r


def test_no_disparity_claim_when_both_systems_change_every_slice_alike():
    got = rows("study-equal", 10, 8, seed=2)
    r = got["study disparity claim (any, Holm)"]
    assert r["n"] == 8 and r["measured"] <= 0.06 + tolerance(0.06, r["n"]), r
    r = got["study gap change per slice"]
    assert r["measured"] >= 0.93 - tolerance(0.93, r["n"]), r
