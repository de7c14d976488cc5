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

The dimension test (:func:`wald_test`) compares the slices' log rates with the same variances:
Welch's heteroscedastic F when each slice has its own speakers, a cluster-robust Wald F otherwise
(docs/statistics.md says why it replaced a wild cluster bootstrap: measured size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats

from harness.stats.arrays import unique_inverse


@dataclass(frozen=True)
class Ratios:
    """The ``k`` columns' ratios and the overall's (index ``k``), with per-speaker influences."""

    values: np.ndarray  # (k + 1,): NaN where Σ b = 0; the last is the overall
    influence: sparse.csr_matrix  # (clusters × k + 1)
    pattern: sparse.csr_matrix  # 1 where a speaker takes part in a column (even with influence 0)
    strata: sparse.csr_matrix  # (clusters × strata) indicator
    stratum: np.ndarray  # (clusters,): each speaker's stratum (k: the shared one; -1: absent)
    # ∂influence/∂centre: −b / (B − b) per (speaker, column); the influence centred on c instead of
    # the column's own ratio R is ``influence − (c − R)·slope`` (null-centred variances)
    slope: sparse.csr_matrix | None = None
    totals: np.ndarray | None = None  # (k + 1,): Σ b per column

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
    skew: np.ndarray | None = None  # third cumulant of the estimate over se³ (Hall's correction)


def ratios(
    cluster: np.ndarray, column: np.ndarray, a: np.ndarray, b: np.ndarray, n_clusters: int, k: int, null: bool = False
) -> Ratios:
    """Linearise the ratios of columns ``0..k``: entries (speaker, column, a, b), repeats summed; column
    ``k`` is the overall the slices are compared with. Strata come from the slice columns ``0..k-1``.
    With ``null`` every column's influences are centred on the overall's ratio (the null of a score
    test: all columns share it), not on the column's own."""
    num = np.bincount(column, weights=a, minlength=k + 1)
    den = np.bincount(column, weights=b, minlength=k + 1)
    values = np.divide(num, den, out=np.full(k + 1, np.nan), where=den > 0)
    centre = np.full(k + 1, values[k]) if null else values
    ids, inverse = unique_inverse(cluster * (k + 1) + column)
    pair_cluster, pair_column = ids // (k + 1), ids % (k + 1)
    pair_a, pair_b = np.bincount(inverse, weights=a), np.bincount(inverse, weights=b)
    # Leave-one-speaker-out: R_(−g) − R = −(a_g − R b_g) / (B − b_g), the linearised influence
    # scaled by 1 / (1 − b_g / B) — the jackknife (CR3-like) version, larger for speakers who
    # carry much of a column (the pooled ratio's skew at few speakers).
    rest = den[pair_column] - pair_b
    residual = pair_a - np.nan_to_num(centre[pair_column]) * pair_b
    own = np.where(rest > 0, residual / np.where(rest > 0, rest, 1.0), 0.0)
    shape = (n_clusters, k + 1)
    influence = sparse.csr_matrix((own, (pair_cluster, pair_column)), shape=shape)
    scaled = np.where(rest > 0, -pair_b / np.where(rest > 0, rest, 1.0), 0.0)
    slope = sparse.csr_matrix((scaled, (pair_cluster, pair_column)), shape=shape)
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
    return Ratios(values, influence, pattern, strata, np.where(present, stratum, -1), slope, den)


def contrasts(r: Ratios, coef: sparse.spmatrix | np.ndarray, conservative: bool = False) -> Contrasts:
    """Standard error and df of each column of ``coef`` ((k + 1) × m) applied to the ratios; with
    ``conservative`` the df count speakers by their squared influences (for the dimension test)."""
    coef = sparse.csc_matrix(coef)
    m = coef.shape[1]
    strata = r.k + 1
    shape = (strata, m)

    def by_stratum(matrix: sparse.spmatrix, *powers: str) -> list[np.ndarray]:
        """Sums over each stratum's speakers of the entries (and their powers), strata × m."""
        entries = matrix.tocoo()
        key = r.stratum[entries.row] * m + entries.col
        out = []
        for power in powers:
            values = {
                "one": entries.data, "abs": np.abs(entries.data), "sq": entries.data**2, "cube": entries.data**3
            }.get(power)
            if power == "four":
                values = entries.data**4
            out.append(np.bincount(key, weights=values, minlength=strata * m).reshape(shape))
        return out

    involved = r.pattern @ abs(coef)
    involved.data = (involved.data > 0).astype(np.float64)
    (n,) = by_stratum(involved, "one")  # speakers of each stratum a contrast involves
    d = r.influence @ coef  # clusters × m
    powers = ("one", "sq", "abs", "cube", "four") if conservative else ("one", "sq", "abs", "cube")
    s1, s2, s_abs, s3, *rest = by_stratum(d, *powers)
    s4 = rest[0] if conservative else None
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = np.where(n >= 2, (s2 - s1**2 / np.maximum(n, 1)) * (n - 1) / np.maximum(n, 1), s2)
        centred = np.maximum(centred, 0.0)
        var = centred.sum(axis=0)
        # Each stratum's df: its Kish effective number of speakers, (Σ |d|)² / Σ d², minus one — a
        # few dominant speakers give few degrees of freedom, whatever the head count. (Chosen by
        # simulation, docs/statistics.md: head count − 1 under-covers with skewed speaker rates;
        # Kish on d² over-covers and gives useless widths at 10 speakers.)
        n_eff = np.where(s2 > 0, s_abs**2 / np.where(s2 > 0, s2, 1.0), n)
        if s4 is not None:  # (Σ d²)² / Σ d⁴: fewer still when one speaker's influence dominates
            n_eff = np.where(s4 > 0, s2**2 / np.where(s4 > 0, s4, 1.0), n)
        df = var**2 / (centred**2 / np.maximum(np.minimum(n_eff, n) - 1, 1)).sum(axis=0)
        # Third cumulant of the estimate, stratum by stratum, on the scale of the jackknife variance
        # above: the k-statistic of the influences (≈ (n − 1)·d) over n², i.e. (n − 1)² / (n(n − 2)) Σ (d − d̄)³.
        mean = s1 / np.maximum(n, 1)
        scale = (n - 1) ** 2 / np.maximum(n * (n - 2), 1)
        third = np.where(n >= 3, (s3 - 3 * mean * s2 + 2 * n * mean**3) * scale, 0.0)
        skew = np.where(var > 0, third.sum(axis=0) / np.where(var > 0, var, 1.0) ** 1.5, 0.0)
    # The fewest speakers of any figure the contrast involves: one speaker's slice has no spread.
    per_column = np.asarray(r.pattern.sum(axis=0)).ravel()
    fewest = np.where(coef.data != 0, per_column[coef.indices], np.inf)
    clusters = np.full(coef.shape[1], np.inf)
    np.minimum.at(clusters, np.repeat(np.arange(coef.shape[1]), np.diff(coef.indptr)), fewest)
    clusters[~np.isfinite(clusters)] = 0
    se = np.sqrt(var)
    return Contrasts(se, np.where(var > 0, df, np.nan), clusters, skew)


def hall_quantiles(q: np.ndarray, skew: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper quantiles of the studentised ``(estimate − θ)/se`` of a sum with standardised
    third cumulant ``skew``: Hall's (1992) monotone cubic transform ``g(T) = T + cT² + c²T³/3 + c/2``
    (``c = skew/3``) is ±q-distributed, so T lies in ``[g⁻¹(−q), g⁻¹(q)]``. A right-skewed sum (few
    speakers carrying most of the errors) makes T left-skewed: the interval moves up."""
    c = np.asarray(skew, dtype=np.float64) / 3

    def inverse(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (np.cbrt(1 + 3 * c * (x - c / 2)) - 1) / c
        return np.where(np.abs(c) > 1e-12, t, x)

    return inverse(-q), inverse(q)


def own_strata(r: Ratios, columns: np.ndarray) -> bool:
    """Whether every speaker of each of ``columns`` sits in that column's own stratum (a between-speaker
    design): contrasts of two such columns then combine their variances as in Welch's test."""
    pattern = r.pattern.tocsc()
    for c in columns:
        speakers = pattern.indices[pattern.indptr[c] : pattern.indptr[c + 1]]
        if not (r.stratum[speakers] == c).all():
            return False
    return True


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


SHARED_FOR_WELCH = 0.1  # Welch's F while at most this share of speakers is in several slices


@dataclass(frozen=True)
class WaldResult:
    statistic: float  # the F statistic
    p_value: float
    df: tuple[float, float]
    method: str


def wald_test(r: Ratios, log: bool = True) -> WaldResult | None:
    """H0: the ``k`` columns of ``r`` share one ratio — on the log scale with ``log`` when all are
    positive (a rate's spread grows with its level; on the log scale the size holds when slices
    differ in speaker spread and volume). Between-speaker designs (every speaker in its column's
    own stratum, or all but a few) get Welch's heteroscedastic F (Welch 1951) with each column's own
    df; otherwise the
    Wald statistic of the k − 1 contrasts with their cluster-robust covariance is referred to
    Hotelling's F with the contrasts' median df. The df count speakers conservatively (Kish on
    squared influences): with the milder count of the intervals, 6 widely spread speakers against
    30 reached a false-positive rate of 0.08 in simulation, with this one 0.04. None with fewer than
    two usable columns."""
    k = r.k
    speakers = np.asarray(r.pattern.sum(axis=0)).ravel()[:k]
    # A column of one speaker has no spread to compare with: the test runs on the others.
    columns = np.flatnonzero(np.isfinite(r.values[:k]) & (speakers >= 2))
    if columns.size < 2:
        return None
    use_log = log and bool((r.values[columns] > 0).all())
    values = np.log(r.values[columns]) if use_log else r.values[columns]
    scale = r.values[columns] if use_log else np.ones(columns.size)
    m = columns.size
    scale_name = "log " if use_log else ""
    if np.all(values == values[0]):  # identical figures (e.g. a condition that changed nothing): no evidence
        return WaldResult(0.0, 1.0, (m - 1.0, 0.0), f"identical {scale_name}ratios")
    present = r.stratum >= 0
    shared = float(np.mean(r.stratum[present] == k)) if present.any() else 0.0
    # Welch when the slices' speakers are (nearly) disjoint: a few speakers in several slices (a
    # mislabelled clip) add a negligible covariance, and must not cost the test its power.
    if own_strata(r, columns) or shared <= SHARED_FOR_WELCH:
        c = contrasts(r, sparse.csc_matrix((1 / scale, (columns, np.arange(m))), shape=(k + 1, m)), True)
        if not (c.se > 0).all() or (c.clusters < 2).any():
            return None
        w = 1 / c.se**2
        total = w.sum()
        centre = (w * values).sum() / total
        lam = ((1 - w / total) ** 2 / c.df).sum()
        f = (w * (values - centre) ** 2).sum() / (m - 1) / (1 + 2 * (m - 2) / (m * m - 1) * lam)
        df2 = (m * m - 1) / (3 * lam)
        p = float(stats.f.sf(f, m - 1, df2))
        return WaldResult(float(f), p, (m - 1.0, float(df2)), f"Welch heteroscedastic F on {scale_name}ratios")
    # Contrasts against the last column; their covariance from the same stratified influences.
    ref = columns[-1]
    rows = np.concatenate([columns[:-1], np.full(m - 1, ref)])
    data = np.concatenate([1 / scale[:-1], -np.full(m - 1, 1 / scale[-1])])
    coef = sparse.csc_matrix((data, (rows, np.tile(np.arange(m - 1), 2))), shape=(k + 1, m - 1))
    c = contrasts(r, coef, True)
    if not (c.se > 0).all() or (c.clusters < 2).any():
        return None
    d = np.asarray((r.influence @ coef).todense())[present]
    stratum = r.stratum[present]
    n = np.bincount(stratum, minlength=k + 1).astype(float)
    means = np.zeros((k + 1, m - 1))
    np.add.at(means, stratum, d)
    means /= np.maximum(n, 1)[:, None]
    factor = np.sqrt(np.where(n > 1, (n - 1) / np.maximum(n, 1), 1.0))[stratum]
    centred = (d - means[stratum]) * factor[:, None]
    estimate = values[:-1] - values[-1]
    wald = float(estimate @ np.linalg.pinv(centred.T @ centred) @ estimate)
    nu = max(float(np.median(c.df)), 1.0)
    df2 = max(nu - (m - 1) + 1, 1.0)
    f = wald * df2 / ((m - 1) * nu)
    p = float(stats.f.sf(f, m - 1, df2))
    return WaldResult(f, p, (m - 1.0, df2), f"Wald F (Hotelling, median contrast df) on {scale_name}ratios")


@dataclass(frozen=True)
class Excess:
    """Per slice: its ratio minus its dimension's pooled ratio, with an interval (None where there
    is none, and why)."""

    estimate: np.ndarray
    intervals: list[tuple[float, float] | None]
    notes: list[str | None]


# Below this many speakers in a between-speaker slice, a dimension's vs-overall / vs-reference
# differences and a condition's excess ΔWER take the larger of the Wald and the null-centred
# variance. Measured (docs/statistics.md): with 6 heavy-tailed speakers against 60 the Wald intervals
# covered 0.875–0.896, the larger 0.950–0.975; with 10 or more speakers in every slice the larger
# over-covered (0.986–0.992 with equal WERs; the excess 0.987 at 10 speakers a slice).
NULL_FLOOR_BELOW = 10


def excess_intervals(
    cluster: np.ndarray, code: np.ndarray, k: int, a: np.ndarray, b: np.ndarray, confidence: float
) -> Excess:
    """Intervals of each slice's excess ``E_s = R_s − R`` over its dimension's pooled ratio ``R``
    (rows with ``code`` in ``0..k-1``; ``a`` may be negative, e.g. paired error differences).

    ``E_s = (1 − w_s) δ_s`` exactly, with ``w_s`` the slice's share of ``Σ b`` and ``δ_s = R_s −
    R_rest`` the slice against the dimension's other rows; the interval is ``(1 − w_s)`` times a t
    interval of ``δ_s`` (each side's leave-one-speaker-out influences, stratified, Welch–Satterthwaite
    df with Kish counts on ``|d|`` as for the slice intervals). Its variance is the larger of two:
    the influences centred on each side's own rate (Wald) and centred on the pooled rate, the null
    of no excess (score-type, as the interaction test's). With the Wald variance alone, a small
    heavy-tailed slice whose few speakers happen to be mildly hit gets a small variance exactly when
    its rate looks different (coverage 0.88 with 6 speakers against 60, docs/statistics.md); a
    slice against the *overall* (which contains it) rather than against the rest made the two sides
    of a two-slice dimension cover differently (0.96 and 0.90), though both state one comparison."""
    inside = code >= 0
    cl, co, a, b = cluster[inside], code[inside], a[inside], b[inside]
    est = np.full(k, np.nan)
    out: list[tuple[float, float] | None] = [None] * k
    notes: list[str | None] = [None] * k
    if not cl.size:
        return Excess(est, out, notes)
    _, g = unique_inverse(cl)
    n_g = int(g.max()) + 1
    own_a = sparse.csr_matrix((a, (g, co)), shape=(n_g, k)).toarray()
    own_b = sparse.csr_matrix((b, (g, co)), shape=(n_g, k)).toarray()
    present = sparse.csr_matrix((np.ones(g.size), (g, co)), shape=(n_g, k)).toarray() > 0
    rest_a, rest_b = own_a.sum(axis=1)[:, None] - own_a, own_b.sum(axis=1)[:, None] - own_b
    in_rest = (present.sum(axis=1)[:, None] - present) > 0
    total_b = float(own_b.sum())
    if total_b <= 0:
        return Excess(est, out, notes)
    pooled = float(own_a.sum()) / total_b
    slice_a, slice_b = own_a.sum(axis=0), own_b.sum(axis=0)
    rest_total = total_b - slice_b
    # Strata as in ratios(): a speaker's only slice when it has ≥ 2 such speakers, else one shared.
    count = present.sum(axis=1)
    only = np.argmax(present, axis=1)
    size = np.bincount(only[count == 1], minlength=k)
    stratum = np.where((count == 1) & (size[only] >= 2), only, k)
    small = bool(((size >= 2) & (size < NULL_FLOOR_BELOW)).any())
    with np.errstate(divide="ignore", invalid="ignore"):
        w = slice_b / total_b
        own_rate = np.where(slice_b > 0, slice_a / np.where(slice_b > 0, slice_b, 1), np.nan)
        rest_rate = np.where(rest_total > 0, (own_a.sum() - slice_a) / np.where(rest_total > 0, rest_total, 1), np.nan)
        est = own_rate - pooled
        # Leave-one-speaker-out scaling of each side (as in ratios()).
        left, right = slice_b[None, :] - own_b, rest_total[None, :] - rest_b
        f_s = np.where(present & (left > 0), 1 / np.where(left > 0, left, 1), 0.0)
        f_r = np.where(in_rest & (right > 0), 1 / np.where(right > 0, right, 1), 0.0)
    speakers_in = present.sum(axis=0)
    level = 1 - (1 - confidence) / 2
    for s in range(k):
        if speakers_in[s] < 2:
            notes[s] = "one speaker"
            continue
        if not (np.isfinite(own_rate[s]) and np.isfinite(rest_rate[s])):
            continue
        members = present[:, s] | in_rest[:, s]
        choices = []
        centres = ((own_rate[s], rest_rate[s]), (pooled, pooled)) if small else ((own_rate[s], rest_rate[s]),)
        for centre_s, centre_r in centres:
            d = (own_a[:, s] - centre_s * own_b[:, s]) * f_s[:, s]
            d -= (rest_a[:, s] - centre_r * rest_b[:, s]) * f_r[:, s]
            choices.append(_stratified(d[members], stratum[members]))
        var, df = max(choices)
        if not var > 0 or not np.isfinite(df):
            notes[s] = "no spread between speakers"
            continue
        half = float(t_quantile(level, df)) * math.sqrt(var)
        delta = own_rate[s] - rest_rate[s]
        out[s] = (float((1 - w[s]) * (delta - half)), float((1 - w[s]) * (delta + half)))
    return Excess(est, out, notes)


def _stratified(d: np.ndarray, stratum: np.ndarray) -> tuple[float, float]:
    """Variance ``Σ_j n_j/(n_j − 1) Σ (d − d̄_j)²`` of a sum of influences over strata and its
    Welch–Satterthwaite df with each stratum's Kish count ``(Σ|d|)² / Σd²`` (as :func:`contrasts`)."""
    _, stratum = np.unique(stratum, return_inverse=True)
    n = np.bincount(stratum).astype(np.float64)
    s1, s2, s_abs = np.bincount(stratum, d), np.bincount(stratum, d * d), np.bincount(stratum, np.abs(d))
    var_j = np.maximum(np.where(n >= 2, n / np.maximum(n - 1, 1), 0.0) * (s2 - s1**2 / n), 0.0)
    var = float(var_j.sum())
    n_eff = np.where(s2 > 0, s_abs**2 / np.where(s2 > 0, s2, 1.0), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = var**2 / (var_j**2 / np.maximum(np.minimum(n_eff, n) - 1, 1)).sum()
    return var, float(df)
