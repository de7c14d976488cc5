"""Array helpers shared by the statistics modules."""

from __future__ import annotations

import numpy as np

_DENSE_LIMIT = 50_000_000


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for non-negative integer codes.

    Codes from factorised tags span a small range, so a bincount table replaces the sort that
    dominates ``np.unique`` on millions of rows; wide ranges fall back to sorting.
    """
    if values.size == 0:
        return values.astype(np.int64), values.astype(np.int64)
    upper = int(values.max()) + 1
    if upper > _DENSE_LIMIT:
        uniques, inverse = np.unique(values, return_inverse=True)
        return uniques, inverse.reshape(-1)
    present = np.bincount(values, minlength=upper) > 0
    uniques = np.flatnonzero(present)
    lookup = np.cumsum(present) - 1
    return uniques, lookup[values]


def ratio_or_nan(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ``numerator / denominator``; NaN where the denominator is not positive."""
    positive = denominator > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(positive, numerator / np.where(positive, denominator, 1.0), np.nan)
