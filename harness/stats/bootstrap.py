"""Speaker-clustered bootstrap of pooled WER, vectorised.

Utterances of one speaker are correlated (same voice, same microphone), so resampling
utterances gives intervals that are too narrow. We resample *speakers* with all their
utterances: one multinomial weight matrix ``W`` (replicates × speakers) is drawn per run and
shared by every slice and dimension, so the uncertainty of both ends of a disparity is counted
together. Sparse per-speaker × per-slice sums ``E`` and ``N`` of *all* slices of all dimensions
turn every replicate into one matrix product: ``WER* = (W @ E) / (W @ N)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from harness.stats.arrays import ratio_or_nan


@dataclass(frozen=True)
class Resampler:
    """Multinomial speaker weights for ``replicates`` bootstrap samples, drawn in fixed chunks.

    The weights are regenerated chunk by chunk from the seed on every call, so memory stays at
    one chunk (``chunk_cells`` weights) however many speakers there are, and every call sees the
    same replicates. Call :meth:`rates` once with all columns to draw the weights only once.
    """

    n_speakers: int
    replicates: int
    seed: int
    chunk_cells: int = 20_000_000

    def chunks(self) -> Iterator[np.ndarray]:
        rows = max(1, self.chunk_cells // max(self.n_speakers, 1))
        streams = np.random.SeedSequence(self.seed).spawn(-(-self.replicates // rows) if self.replicates else 0)
        for index, stream in enumerate(streams):
            count = min(rows, self.replicates - index * rows)
            rng = np.random.default_rng(stream)
            # Drawing n speakers with replacement = a multinomial count per speaker.
            draws = rng.integers(0, self.n_speakers, size=(count, self.n_speakers))
            offsets = (np.arange(count) * self.n_speakers)[:, None]
            yield (
                np.bincount((draws + offsets).ravel(), minlength=count * self.n_speakers)
                .reshape(count, self.n_speakers)
                .astype(np.float64)
            )

    def rates(self, errors: sparse.spmatrix | np.ndarray, words: sparse.spmatrix | np.ndarray) -> np.ndarray:
        """Replicates of pooled rates: ``errors``/``words`` are (speakers × columns) sums.

        Returns (replicates × columns); NaN where a replicate drew no word of that column.
        """
        errors_t, words_t = sparse.csr_matrix(errors).T.tocsr(), sparse.csr_matrix(words).T.tocsr()
        out = np.empty((self.replicates, errors_t.shape[0]))
        start = 0
        for weights in self.chunks():
            num = np.asarray(errors_t @ weights.T).T
            den = np.asarray(words_t @ weights.T).T
            out[start : start + len(weights)] = ratio_or_nan(num, den)
            start += len(weights)
        return out


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column, ignoring undefined (NaN) replicates; an infinite
    replicate (a ratio over a zero) can make the upper end +inf."""
    alpha = 1.0 - confidence
    if replicates.shape[0] == 0:
        nan = np.full(replicates.shape[1:], np.nan)
        return nan, nan
    with np.errstate(all="ignore"):
        valid = ~np.isnan(replicates)
        low = np.full(replicates.shape[1:], np.nan)
        high = np.full(replicates.shape[1:], np.nan)
        enough = valid.sum(axis=0) > 0
        levels = [alpha / 2, 1 - alpha / 2]
        for columns, method in (
            (enough & ~np.isinf(replicates).any(axis=0), "linear"),
            (enough & np.isinf(replicates).any(axis=0), "inverted_cdf"),
        ):
            # Interpolating next to an infinite replicate gives NaN; pick order statistics there.
            if columns.any():
                quantiles = np.nanquantile(replicates[:, columns], levels, axis=0, method=method)
                low[columns], high[columns] = quantiles[0], quantiles[1]
    return low, high
