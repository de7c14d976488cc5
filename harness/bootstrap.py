"""Speaker-clustered bootstrap of pooled WER, vectorised.

Utterances of one speaker are correlated (same voice, same microphone), so resampling
utterances gives intervals that are too narrow. We resample *speakers* with all their
utterances: one multinomial weight matrix ``W`` (replicates × speakers) is drawn once per run
and shared by every slice and dimension, so the uncertainty of both ends of a disparity is
counted together. Per-speaker × per-slice sums ``E`` and ``N`` turn every replicate of every
slice into one matrix product: ``WER* = (W @ E) / (W @ N)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Resampler:
    """Speaker weights for ``replicates`` bootstrap samples (row b: how often each speaker is drawn)."""

    weights: np.ndarray  # (replicates, speakers) float64

    @classmethod
    def draw(cls, n_speakers: int, replicates: int, seed: int) -> Resampler:
        rng = np.random.default_rng(seed)
        if n_speakers == 0 or replicates == 0:
            return cls(np.zeros((replicates, n_speakers)))
        counts = rng.multinomial(n_speakers, np.full(n_speakers, 1.0 / n_speakers), size=replicates)
        return cls(counts.astype(np.float64))

    @property
    def replicates(self) -> int:
        return self.weights.shape[0]

    def rates(self, errors: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Replicates of pooled rates: ``errors``/``words`` are (speakers × slices) sums.

        Returns (replicates × slices); NaN where a replicate drew no word of that slice.
        """
        num = self.weights @ errors
        den = self.weights @ words
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def cell_sums(cluster: np.ndarray, label: np.ndarray, values: np.ndarray, n_clusters: int, n_labels: int) -> np.ndarray:
    """(clusters × labels) sums of ``values``; ``label`` < 0 marks rows outside every slice."""
    keep = label >= 0
    flat = cluster[keep] * n_labels + label[keep]
    return np.bincount(flat, weights=values[keep], minlength=n_clusters * n_labels).reshape(n_clusters, n_labels)


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column, ignoring undefined (NaN) replicates."""
    alpha = 1.0 - confidence
    if replicates.shape[0] == 0:
        nan = np.full(replicates.shape[1:], np.nan)
        return nan, nan
    with np.errstate(all="ignore"):
        valid = ~np.isnan(replicates)
        low = np.full(replicates.shape[1:], np.nan)
        high = np.full(replicates.shape[1:], np.nan)
        enough = valid.sum(axis=0) > 0
        if enough.any():
            quantiles = np.nanquantile(replicates[:, enough], [alpha / 2, 1 - alpha / 2], axis=0)
            low[enough], high[enough] = quantiles[0], quantiles[1]
    return low, high
