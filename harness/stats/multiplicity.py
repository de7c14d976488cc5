"""Holm–Bonferroni adjustment across a family of tests (dimensions, or dimensions × conditions), and how a
p-value is stated.

The tests themselves are in :mod:`harness.stats.inference` and :mod:`harness.stats.by_slice`.
"""

from __future__ import annotations

from collections.abc import Sequence


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given)."""
    if len(p_values) == 0:
        return []
    # Imported here: statsmodels pulls in scipy.stats (~0.5 s), which a cached rerun's terminal output must not pay for.
    from statsmodels.stats.multitest import multipletests

    return multipletests(list(p_values), method="holm")[1].tolist()


def p_text(p: float | None) -> str:
    """A p-value as stated: below double precision it is a bound, not 0."""
    if p is None:
        return "–"
    return "< 1e-15" if p < 1e-15 else f"= {p:.2g}"
