"""Linearised cluster-robust inference for ratios of per-speaker sums, and a wild cluster bootstrap test.

Every figure asrfair reports is a ratio ``R = Σ_g a_g / Σ_g b_g`` over speakers ``g``: pooled WER
(errors / words), speaker-mean (Σ own WER / speakers), utterance-mean, ΔWER under a condition
(Σ (E_c − E_ref) / Σ N). Its influence per speaker is ``u_g = (a_g − R b_g) / Σ b``; a difference
of two such figures (a slice against its dimension's overall, against a reference, two slices)
has the difference of the influences, speaker by speaker, so shared speakers and paired designs
are counted exactly. The variance is stratified: speakers with one value of the tag form one
stratum per value (they were recruited per value), speakers with several share one stratum;
``V = Σ_j n_j/(n_j − 1) Σ_{g∈j} (d_g − d̄_j)²`` over the ``n_j`` speakers of stratum ``j`` that
the figure involves, with Welch–Satterthwaite degrees of freedom
``ν = V² / Σ_j V_j² / (n_j − 1)``. Intervals use t(ν) quantiles: rates and ratios on the log
scale (positive, skewed), differences on the raw scale.

The dimension test (:func:`wild_test`) is a wild cluster bootstrap with the null imposed and a
studentised statistic (Cameron, Gelbach & Miller 2008; Webb 2014 six-point weights for few
speakers), computed in closed form from sparse speaker × slice sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats

from harness.arrays import unique_inverse


@dataclass(frozen=True)
class Ratios:
    """The ``k`` columns' ratios and the overall's (index ``k``), with per-speaker influences."""

    values: np.ndarray  # (k + 1,): NaN where Σ b = 0; the last is the overall
    influence: sparse.csr_matrix  # (clusters × k + 1)
    pattern: sparse.csr_matrix  # 1 where a speaker takes part in a column (even with influence 0)
    strata: sparse.csr_matrix  # (clusters × strata) indicator

    @property
    def k(self) -> int:
        return self.values.size - 1


@dataclass(frozen=True)
class Contrasts:
    """Per contrast: its standard error, Welch–Satterthwaite df and the fewest speakers of any
    figure it involves."""

    se: np.ndarray
    df: np.ndarray
    clusters: np.ndarray


def ratios(cluster: np.ndarray, column: np.ndarray, a: np.ndarray, b: np.ndarray, n_clusters: int, k: int) -> Ratios:
    """Linearise the ratios of columns ``0..k``: entries (speaker, column, a, b), repeats summed; column
    ``k`` is the overall the slices are compared with. Strata come from the slice columns ``0..k-1``."""
    num = np.bincount(column, weights=a, minlength=k + 1)
    den = np.bincount(column, weights=b, minlength=k + 1)
    values = np.divide(num, den, out=np.full(k + 1, np.nan), where=den > 0)
    ids, inverse = unique_inverse(cluster * (k + 1) + column)
    pair_cluster, pair_column = ids // (k + 1), ids % (k + 1)
    pair_a, pair_b = np.bincount(inverse, weights=a), np.bincount(inverse, weights=b)
    # Leave-one-speaker-out: R_(−g) − R = −(a_g − R b_g) / (B − b_g), the linearised influence
    # scaled by 1 / (1 − b_g / B) — the jackknife (CR3-like) version, larger for speakers who
    # carry much of a column (the pooled ratio's skew at few speakers).
    rest = den[pair_column] - pair_b
    residual = pair_a - np.nan_to_num(values[pair_column]) * pair_b
    own = np.where(rest > 0, residual / np.where(rest > 0, rest, 1.0), 0.0)
    shape = (n_clusters, k + 1)
    influence = sparse.csr_matrix((own, (pair_cluster, pair_column)), shape=shape)
    pattern = sparse.csr_matrix((np.ones(ids.size), (pair_cluster, pair_column)), shape=shape)
    # Stratum: the speaker's only slice when that slice has ≥ 2 such speakers, else one shared stratum.
    in_slice = column < k
    pairs, _ = unique_inverse(cluster[in_slice] * k + column[in_slice])
    per_cluster = np.bincount(pairs // k, minlength=n_clusters)
    only = np.zeros(n_clusters, dtype=np.int64)
    only[pairs // k] = pairs % k
    single = per_cluster == 1
    size = np.bincount(only[single], minlength=max(k, 1))
    stratum = np.where(single & (size[only] >= 2), only, k)
    present = np.bincount(cluster, minlength=n_clusters) > 0
    strata = sparse.csr_matrix(
        (np.ones(int(present.sum())), (np.flatnonzero(present), stratum[present])), shape=(n_clusters, k + 1)
    )
    return Ratios(values, influence, pattern, strata)


def contrasts(r: Ratios, coef: sparse.spmatrix | np.ndarray) -> Contrasts:
    """Standard error and df of each column of ``coef`` ((k + 1) × m) applied to the ratios."""
    coef = sparse.csc_matrix(coef)
    d = (r.influence @ coef).tocsc()  # clusters × m
    involved = (r.pattern @ abs(coef)).tocsc()
    involved.data = (involved.data > 0).astype(np.float64)
    st = r.strata.T.tocsr()
    n = (st @ involved).toarray()  # strata × m: speakers of each stratum a contrast involves
    s1 = (st @ d).toarray()
    d2 = d.multiply(d)
    s2 = (st @ d2).toarray()
    s4 = (st @ d2.multiply(d2)).toarray()
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = np.where(n >= 2, (s2 - s1**2 / np.maximum(n, 1)) * (n - 1) / np.maximum(n, 1), s2)
        centred = np.maximum(centred, 0.0)
        var = centred.sum(axis=0)
        # Each stratum's df: the effective number of speakers of its squared influences,
        # (Σ d²)² / Σ d⁴ (Kish), minus one — a few dominant speakers give few degrees of freedom,
        # whatever the head count (chosen by simulation: docs/statistics.md).
        n_eff = np.where(s4 > 0, s2**2 / np.where(s4 > 0, s4, 1.0), n)
        df = var**2 / (centred**2 / np.maximum(np.minimum(n_eff, n) - 1, 1)).sum(axis=0)
    # The fewest speakers of any figure the contrast involves: one speaker's slice has no spread.
    per_column = np.asarray(r.pattern.sum(axis=0)).ravel()
    nonzero = coef.copy()
    nonzero.data = (nonzero.data != 0).astype(np.float64)
    hits = sparse.csc_matrix(nonzero.multiply(per_column[:, None]))
    clusters = np.full(coef.shape[1], np.inf)
    for j in range(coef.shape[1]):
        values = hits.data[hits.indptr[j] : hits.indptr[j + 1]]
        clusters[j] = values[values > 0].min() if (values > 0).any() else 0
    se = np.sqrt(var)
    return Contrasts(se, np.where(var > 0, df, np.nan), clusters)


def t_quantile(level: float, df: np.ndarray | float) -> np.ndarray:
    """The ``level`` quantile of t(df) (df ≥ 1)."""
    return stats.t.ppf(level, np.maximum(df, 1.0))


def wilson(successes: int, trials: int, confidence: float) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (None without trials)."""
    if trials <= 0:
        return None
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


WEBB = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
WEBB_BELOW = 13  # Webb's six-point weights below this many speakers, Rademacher from it on


@dataclass(frozen=True)
class WildResult:
    statistic: float
    p_value: float
    replicates: int
    weights: str


def wild_test(
    cluster: np.ndarray,
    column: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    k: int,
    *,
    replicates: int,
    seed: int,
    chunk_cells: int = 20_000_000,
) -> WildResult | None:
    """H0: the ``k`` columns share one ratio. ``T = Σ_k d_k² / V_k`` with ``d_k`` a column's ratio
    minus the pooled ratio of all columns and ``V_k`` its cluster-robust variance. Replicates keep
    every (speaker, column) denominator and set ``a* = R0 b + w_g (a − R0 b)`` with one weight per
    speaker, recomputing ``T*`` with its own variance. None when fewer than two columns have data."""
    _, cl = unique_inverse(cluster)
    g = int(cl.max()) + 1 if cl.size else 0
    den = np.bincount(column, weights=b, minlength=k)
    if (den > 0).sum() < 2 or replicates < 1 or g < 2:
        return None
    total = den.sum()
    r0 = a.sum() / total
    safe = np.where(den > 0, den, 1.0)
    resid = a - r0 * b
    shape = (g, k)

    def mat(values: np.ndarray) -> sparse.csc_matrix:
        return sparse.csc_matrix((values, (cl, column)), shape=shape)

    p = resid / safe[column]  # the column's influence at the null
    q = np.bincount(cl, weights=resid, minlength=g) / total  # the pooled ratio's, per speaker
    beta = b / safe[column]
    gamma = np.bincount(cl, weights=b, minlength=g) / total
    qp, gp = q[cl], gamma[cl]
    linear = sparse.hstack([mat(p), mat(p * gp), mat(p * beta), mat(qp * beta)]).tocsc()
    squared = sparse.hstack([mat(p * p), mat(p * qp)]).tocsc()
    dense_lin = np.column_stack([q, q * gamma])
    sum_beta2 = np.bincount(column, weights=beta * beta, minlength=k)
    sum_gb = np.bincount(column, weights=gp * beta, minlength=k)
    sum_g2 = float(gamma @ gamma)

    def statistic(w: np.ndarray) -> np.ndarray:
        """T for each row of speaker weights (replicates × speakers)."""
        lin = np.asarray((linear.T @ w.T).T)
        dl = w @ dense_lin
        w2 = w * w
        sq = np.asarray((squared.T @ w2.T).T)
        delta_k, wpg, wpb, wqb = (lin[:, i * k : (i + 1) * k] for i in range(4))
        delta_0, wqg = dl[:, :1], dl[:, 1:2]
        term1 = sq[:, :k] - 2 * sq[:, k:] + (w2 @ (q * q))[:, None]
        wxg = wpg - wqg  # Σ w x γ
        wxb = wpb - wqb  # Σ w x β
        term2 = 2 * delta_0 * wxg - 2 * delta_k * wxb
        term3 = delta_0**2 * sum_g2 - 2 * delta_0 * delta_k * sum_gb + delta_k**2 * sum_beta2
        var = term1 + term2 + term3
        d = delta_k - delta_0
        with np.errstate(invalid="ignore", divide="ignore"):
            terms = np.where((var > 1e-300) & (den > 0), d * d / np.where(var > 1e-300, var, 1.0), 0.0)
        return terms.sum(axis=1)

    observed = float(statistic(np.ones((1, g)))[0])
    rng = np.random.default_rng(seed)
    webb = g < WEBB_BELOW
    exceed, rows = 0, max(1, chunk_cells // g)
    for start in range(0, replicates, rows):
        count = min(rows, replicates - start)
        w = WEBB[rng.integers(0, 6, size=(count, g))] if webb else rng.integers(0, 2, size=(count, g)) * 2.0 - 1.0
        exceed += int(np.sum(statistic(w) >= observed * (1 - 1e-10)))
    return WildResult(observed, (1 + exceed) / (1 + replicates), replicates, "Webb six-point" if webb else "Rademacher")
