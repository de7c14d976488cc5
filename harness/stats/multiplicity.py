"""Holm–Bonferroni adjustment across a family of tests (dimensions, or dimensions × conditions), and how a
p-value is stated.

The tests themselves are in :mod:`harness.stats.inference` and :mod:`harness.stats.by_slice`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given).

    The arithmetic of statsmodels' ``multipletests(method="holm")``, operation for operation (so
    bit-identical), without its ``gc.collect()``: a full collection costs ~0.4 s each time on a
    100,000-utterance run's heap, and a run adjusts several families."""
    if len(p_values) == 0:
        return []
    p = np.asarray(list(p_values))
    order = np.argsort(p)
    corrected = np.maximum.accumulate(np.take(p, order) * np.arange(len(p), 0, -1))
    corrected[corrected > 1] = 1
    adjusted = np.empty_like(corrected)
    adjusted[order] = corrected
    return adjusted.tolist()


def p_text(p: float | None) -> str:
    """A p-value as stated: below double precision it is a bound, not 0."""
    if p is None:
        return "–"
    return "< 1e-15" if p < 1e-15 else f"= {p:.2g}"
