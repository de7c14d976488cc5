"""The statistics behind each check: a paired sign-flip test over speakers.

Under "same model", swapping which run a speaker's transcripts came from changes nothing, so
flipping speakers at random gives the null distribution of every check at once; one-sided
p-values are Holm-corrected over all tested checks (the family that :func:`sign_flip_p_values`
returns, keyed by :class:`~harness.decide.gate.checks.CheckId`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from harness.config import GateConfig
from harness.decide.gate.checks import CheckId, CheckKind
from harness.decide.gate.compare import RunComparison
from harness.stats.degradation import compared_dimensions, pair_conditions
from harness.stats.multiplicity import holm
from harness.stats.slices import TagCodes, slice_codes


def is_set(*thresholds: float | None) -> bool:
    return any(t is not None for t in thresholds)


def sign_flip_p_values(comparison: RunComparison, gate: GateConfig) -> dict[CheckId, float]:
    """Holm-adjusted one-sided p-values of every sign-flip-tested check: the Holm family."""
    result = comparison.result
    if result is None:
        return {}
    paired = pair_conditions(comparison.table, [c.name for c in result.conditions])
    diff = paired.errors[1] - paired.errors[0]
    rng = np.random.default_rng(gate.seed)
    flips = rng.integers(0, 2, size=(gate.flips, paired.n_clusters)).astype(np.float64)  # 1: swap the runs
    coder = TagCodes(paired.reference_rows)
    specs = compared_dimensions(comparison.specs)  # the dimensions of result.dimensions, in order
    raw: dict[CheckId, float] = {}
    everyone = np.zeros(len(diff), dtype=np.int64)
    if is_set(gate.wer_increase, gate.wer_increase_relative):
        raw[CheckId(CheckKind.WER)] = _flip_p(_sums(everyone, 1, paired, diff)[1], flips)[0]
    for spec, dim in zip(specs, result.dimensions, strict=True):
        codes = slice_codes(paired.reference_rows, spec, coder)
        k = len(codes.labels)
        base_sum, change_sum, words = _sums(codes.codes, k, paired, diff)
        ranked = np.array([s.supported for s in dim.slices])
        if k < 2:
            continue
        if is_set(gate.slice_wer_increase, gate.slice_wer_increase_relative):
            p = _flip_p(change_sum, flips)
            raw.update(
                {
                    CheckId(CheckKind.SLICE_WER, dim.name, label): p[i]
                    for i, label in enumerate(codes.labels)
                    if ranked[i]
                }
            )
        if ranked.sum() >= 2:
            spreads = _flip_spread(base_sum, change_sum, words, flips, ranked)
            for kind, enabled in ((CheckKind.GAP, gate.gap_increase), (CheckKind.RATIO, gate.ratio_increase)):
                if enabled is not None:
                    raw[CheckId(kind, dim.name)] = spreads[kind]
    adjusted = holm(list(raw.values())) if raw else []
    return dict(zip(raw, adjusted, strict=True))


def _sums(codes: np.ndarray, k: int, paired: Any, diff: np.ndarray) -> tuple[np.ndarray, sparse.csr_matrix, np.ndarray]:
    """Per slice: baseline errors, the (cluster × slice) candidate-minus-baseline errors, words."""
    inside = codes >= 0
    base = np.bincount(codes[inside], weights=paired.errors[0][inside], minlength=k)
    words = np.bincount(codes[inside], weights=paired.words[inside], minlength=k)
    change = sparse.coo_matrix(
        (diff[inside], (paired.cluster[inside], codes[inside])), shape=(paired.n_clusters, k)
    ).tocsr()
    return base, change, words


def _flip_p(change: sparse.csr_matrix, flips: np.ndarray) -> np.ndarray:
    """P(ΔWER under random speaker swaps ≥ the observed ΔWER), per slice (words are fixed, so errors suffice)."""
    observed = np.asarray(change.sum(axis=0)).ravel()
    null = observed - 2 * (change.T @ flips.T).T  # a swapped speaker's change changes sign
    return (1 + (null >= observed - 1e-9).sum(axis=0)) / (len(flips) + 1)


def _flip_spread(
    base: np.ndarray, change: sparse.csr_matrix, words: np.ndarray, flips: np.ndarray, ranked: np.ndarray
) -> dict[CheckKind, float]:
    """Sign-flip p-values of the rise in the gap (max − min) and ratio (max / min) of ranked slices."""
    total = np.asarray(change.sum(axis=0)).ravel()
    swapped = (change.T @ flips.T).T  # per flip, per slice: the change moved from candidate to baseline
    safe = np.where(words > 0, words, 1.0)
    a = ((base + swapped) / safe)[:, ranked]
    b = ((base + total - swapped) / safe)[:, ranked]
    a0, b0 = (base / safe)[ranked], ((base + total) / safe)[ranked]
    out = {}
    for kind, spread in ((CheckKind.GAP, lambda w: w.max(-1) - w.min(-1)), (CheckKind.RATIO, _ratio)):
        observed = spread(b0) - spread(a0)
        null = spread(b) - spread(a)
        out[kind] = float((1 + np.sum(null >= observed - 1e-9)) / (len(flips) + 1))
    return out


def _ratio(wers: np.ndarray) -> np.ndarray:
    low = wers.min(-1)
    return np.where(low > 0, wers.max(-1) / np.where(low > 0, low, 1.0), np.inf)
