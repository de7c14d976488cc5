"""Does WER depend on this tag? A speaker-level permutation test, Holm-corrected across dimensions.

Statistic: ``T = Σ_k (E_k − W·N_k)² / N_k`` over the ranked slices (E errors, N words, W the
pooled WER of those slices) — a word-weighted dispersion of slice WERs, zero when all are equal.

* When every speaker has one value of the tag (accent, dialect, usually device), the speakers'
  labels are permuted across speakers: the null is "the speaker's group does not matter", and
  the speaker, not the utterance, is the unit — as for the bootstrap.
* When a tag varies within speakers (noise, a per-utterance condition), labels are permuted
  *within* each speaker (a stratified test), so speaker effects cannot pose as tag effects.
* When only some speakers have several values (one mislabelled clip, or an intersection), the
  single-valued speakers are permuted across speakers and the others within themselves
  (``mixed``), so one odd speaker does not turn a between-speaker tag into a powerless test.

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

Kind = Literal["between-speaker", "within-speaker", "mixed"]


@dataclass(frozen=True)
class PermutationResult:
    statistic: float
    p_value: float
    permutations: int
    kind: Kind


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
    n_clusters = int(cluster.max()) + 1
    cluster_label = np.full(n_clusters, -1)
    cluster_label[cluster] = label  # one of each speaker's labels: the label, for single-valued speakers
    labels_of = np.bincount(unique_inverse(cluster * n_labels + label)[0] // n_labels, minlength=n_clusters)
    single = labels_of == 1
    mixed_rows = ~single[cluster]
    # Each permutation shuffles every single-valued speaker and every row of the others: cap the work.
    units = int(single.sum()) + int(mixed_rows.sum())
    permutations = max(1, min(permutations, row_budget // max(units, 1)))
    kind: Kind
    if single.all():
        stats = _between(cluster, cluster_label, errors, words, n_labels, permutations, rng)
        kind = "between-speaker"
    else:  # every speaker, or only some, carry several values
        stats = _mixed(cluster, label, cluster_label, single, errors, words, n_labels, permutations, rng)
        kind = "mixed" if single.any() else "within-speaker"
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


def _mixed(
    cluster: np.ndarray,
    label: np.ndarray,
    cluster_label: np.ndarray,
    single: np.ndarray,
    errors: np.ndarray,
    words: np.ndarray,
    n_labels: int,
    permutations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Single-valued speakers' labels are shuffled across those speakers; the rows of speakers
    with several values are shuffled within each of them (sorting by speaker + a random fraction
    shuffles inside each speaker's block only). Both parts keep their own margins."""
    n_clusters = cluster_label.size
    e_cluster = np.bincount(cluster, weights=errors, minlength=n_clusters)[single]
    n_cluster = np.bincount(cluster, weights=words, minlength=n_clusters)[single]
    single_labels = cluster_label[single]
    rows = ~single[cluster]
    order = np.argsort(cluster[rows], kind="stable")
    m_cluster, m_label = cluster[rows][order], label[rows][order]
    m_errors, m_words = errors[rows][order], words[rows][order]
    out = np.empty(permutations)
    for i in range(permutations):
        shuffled = rng.permutation(single_labels)
        within = m_label[np.argsort(m_cluster + rng.random(m_label.size))]
        e = _sums(shuffled, e_cluster, n_labels) + _sums(within, m_errors, n_labels)
        n = _sums(shuffled, n_cluster, n_labels) + _sums(within, m_words, n_labels)
        out[i] = dispersion(e, n)[0]
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
