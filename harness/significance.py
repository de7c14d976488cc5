"""Does WER depend on this tag? A speaker-level permutation test, Holm-corrected across dimensions.

Statistic: ``T = Σ_k (E_k − W·N_k)² / N_k`` over the ranked slices (E errors, N words, W the
pooled WER of those slices) — a word-weighted dispersion of slice WERs, zero when all are equal.

* When every speaker has one value of the tag (accent, dialect, usually device), the speakers'
  labels are permuted across speakers: the null is "the speaker's group does not matter", and
  the speaker, not the utterance, is the unit — as for the bootstrap.
* When a tag varies within speakers (noise, a per-utterance condition), labels are permuted
  *within* each speaker (a stratified test), so speaker effects cannot pose as tag effects.

Each permutation shuffles every speaker (or every row), so the count is capped at
``row_budget`` shuffled units in all; the count used is reported, and with it the smallest
p-value the test can return, 1 / (1 + permutations).

p = (1 + #{T* >= T}) / (1 + permutations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness.arrays import unique_inverse


@dataclass(frozen=True)
class PermutationResult:
    statistic: float
    p_value: float
    permutations: int
    kind: Literal["between-speaker", "within-speaker"]


def dispersion(errors: np.ndarray, words: np.ndarray) -> np.ndarray:
    """T per row of (permutations × slices) sums (or one row)."""
    pooled = errors.sum(axis=-1, keepdims=True) / words.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(words > 0, (errors - pooled * words) ** 2 / np.where(words > 0, words, 1), 0.0)
    return terms.sum(axis=-1)


def permutation_test(
    cluster: np.ndarray,
    label: np.ndarray,
    errors: np.ndarray,
    words: np.ndarray,
    *,
    permutations: int,
    seed: int,
    row_budget: int = 20_000_000,
) -> PermutationResult | None:
    """Rows: one per scored utterance of the ranked slices (``label`` in 0..K-1). None if K < 2."""
    n_labels = int(label.max()) + 1 if label.size else 0
    if n_labels < 2 or permutations < 1:
        return None
    rng = np.random.default_rng(seed)
    observed = float(dispersion(_sums(label, errors, n_labels), _sums(label, words, n_labels))[0])
    _, cluster = unique_inverse(cluster)
    cluster_label = np.full(int(cluster.max()) + 1, -1)
    cluster_label[cluster] = label  # one of each speaker's labels; all of them when nested
    nested = bool(np.all(cluster_label[cluster] == label))
    # Each permutation shuffles every speaker (between) or every row (within): cap the total work.
    units = cluster_label.size if nested else label.size
    permutations = max(1, min(permutations, row_budget // max(units, 1)))
    if nested:
        stats = _between(cluster, cluster_label, errors, words, n_labels, permutations, rng)
        kind: Literal["between-speaker", "within-speaker"] = "between-speaker"
    else:
        stats = _within(cluster, label, errors, words, n_labels, permutations, rng)
        kind = "within-speaker"
    p_value = (1 + int(np.sum(stats >= observed - 1e-12 * max(observed, 1.0)))) / (1 + permutations)
    return PermutationResult(observed, p_value, permutations, kind)


def _sums(label: np.ndarray, values: np.ndarray, n_labels: int) -> np.ndarray:
    return np.bincount(label, weights=values, minlength=n_labels)[None, :]


def _between(
    cluster: np.ndarray,
    cluster_label: np.ndarray,
    errors: np.ndarray,
    words: np.ndarray,
    n_labels: int,
    permutations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    n_clusters = cluster_label.size
    e = np.bincount(cluster, weights=errors, minlength=n_clusters)
    n = np.bincount(cluster, weights=words, minlength=n_clusters)
    out = np.empty(permutations)
    chunk = max(1, 5_000_000 // max(n_clusters, 1))
    for start in range(0, permutations, chunk):
        count = min(chunk, permutations - start)
        shuffled = rng.permuted(np.broadcast_to(cluster_label, (count, n_clusters)), axis=1)
        flat = (np.arange(count)[:, None] * n_labels + shuffled).ravel()
        size = count * n_labels
        e_perm = np.bincount(flat, weights=np.tile(e, count), minlength=size).reshape(count, n_labels)
        n_perm = np.bincount(flat, weights=np.tile(n, count), minlength=size).reshape(count, n_labels)
        out[start : start + count] = dispersion(e_perm, n_perm)
    return out


def _within(
    cluster: np.ndarray,
    label: np.ndarray,
    errors: np.ndarray,
    words: np.ndarray,
    n_labels: int,
    permutations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    order = np.argsort(cluster, kind="stable")
    cluster, label, errors, words = cluster[order], label[order], errors[order], words[order]
    out = np.empty(permutations)
    for i in range(permutations):
        # Rows are sorted by speaker; sorting by speaker + a random fraction shuffles inside each block only.
        shuffle = np.argsort(cluster + rng.random(label.size))
        permuted = label[shuffle]
        out[i] = dispersion(_sums(permuted, errors, n_labels), _sums(permuted, words, n_labels))[0]
    return out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given)."""
    m = len(p_values)
    order = np.argsort(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()
