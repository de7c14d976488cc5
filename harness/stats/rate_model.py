"""Model-based view: each tag's effect on the error rate, *controlled for* the other tags.

A slice table answers "how bad is WER for Scottish speakers?"; if Scottish speakers were also
recorded on worse microphones, part of that gap is the microphone. Following Liu et al. (2022,
"Towards measuring fairness in speech recognition: Casual Conversations dataset transcriptions")
we fit a Poisson GEE of per-utterance errors with a log(reference words) offset, utterances
clustered by speaker (exchangeable within speaker is absorbed by the robust sandwich errors),
and the tags as factors. ``exp(coefficient)`` is a level's error-rate ratio against its
factor's reference level, holding the other factors fixed.

The plain sandwich under-covers with few speakers (benchmarks/calibration.py: 0.71–0.88 at 3–20
speakers per level), so the standard errors are bias-reduced (Mancl & DeRouen 2001) and the
interval and p-value use t with df = speakers − 1 (measured: 0.90–0.97 from 3 speakers per level;
t with per-level df over-covers). A level (or reference) with one speaker gets no interval and no
p-value.

Factors that add no information (one level) or are nested in factors already in the model
(dialect within accent) would make the design singular; they are dropped and reported.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from harness.stats.by_slice import cluster_units
from harness.stats.records import Effect, ModelResult
from harness.stats.slices import SliceSpec

log = logging.getLogger(__name__)
_FEW_CLUSTERS = 10  # speakers per level below which the intervals are approximate (measured)
METHOD = (
    "Poisson GEE, log(words) offset, speaker clusters, bias-reduced (Mancl–DeRouen) robust SE, "
    "t with speakers − 1 df"
)


def model_for_slices(
    table: pd.DataFrame,
    specs: Sequence[SliceSpec],
    factors: Sequence[str] | None,
    confidence: float,
    max_levels: int | None = None,
) -> ModelResult:
    """Default factors: every single-tag dimension, in slice-file order; references from the slices.
    Above ``max_levels`` tag values in all (``stats.model_max_levels``) the fit is skipped with a
    warning: its cost grows with the square of the levels (3,000 values took over 10 minutes)."""
    single = [spec for spec in specs if len(spec.by) == 1 and not spec.bins and not spec.groups]
    candidates = list(factors) if factors else list(dict.fromkeys(spec.by[0] for spec in single))
    references = {spec.by[0]: spec.reference for spec in single if spec.reference}
    levels = sum(int(table[c].nunique()) for c in candidates if c in table)
    if max_levels is not None and levels > max_levels:
        reason = f"skipped: its factors have {levels} values in all, over stats.model_max_levels ({max_levels})"
        log.warning("rate model %s; raise the limit or merge rare values", reason)
        return ModelResult("Poisson GEE, log(words) offset, speaker clusters, robust SE", candidates, {}, error=reason)
    return fit_rate_model(table, candidates, references, confidence=confidence)


def fit_rate_model(
    table: pd.DataFrame,
    candidates: Sequence[str],
    references: Mapping[str, str],
    *,
    confidence: float = 0.95,
) -> ModelResult:
    """Fit on scored utterances with at least one reference word; factors missing on some of
    them are left out (and reported) rather than narrowing the model to a subset."""
    method = METHOD
    rows = table[(table["status"] == "ok") & (table["ref_words"] > 0)]
    factors, dropped = _choose_factors(rows, candidates)
    refs = {f: _reference(rows, f, references.get(f)) for f in factors}
    if not factors or rows.empty:
        return ModelResult(method, factors, refs, dropped=dropped, error="no factor with two or more levels to model")
    design = _design(rows, factors, refs)
    clusters = pd.factorize(cluster_units(rows))[0]
    try:
        params, se = _fit(rows, design, clusters)
    except Exception as exc:  # statsmodels raises many types on degenerate data; the run goes on
        log.warning("rate model could not be fitted: %s", exc)
        return ModelResult(method, factors, refs, dropped=dropped, error=f"{type(exc).__name__}: {exc}")
    errors_by_level = {f: rows.groupby(f)["errors"].sum() for f in factors}
    speaker_of = pd.Series(clusters, index=rows.index)
    speakers_by_level = {f: speaker_of.groupby(rows[f].astype(str)).nunique() for f in factors}
    n_clusters = int(clusters.max()) + 1
    effects = []
    for i, (factor, level) in enumerate(design.columns):
        if not factor:  # column 0 is the intercept
            continue
        speakers = int(speakers_by_level[factor][level])
        if errors_by_level[factor][level] <= 0:
            # No finite log-rate: the fit's estimate is an artefact (a huge negative coefficient
            # with a tiny error), so it is reported as unknown.
            effects.append(Effect(factor, level, refs[factor], None, [None, None], None, speakers, "no errors"))
            continue
        fewest = min(speakers, int(speakers_by_level[factor][refs[factor]]))
        if fewest < 2:
            # One speaker has no between-speaker spread: a sandwich interval would be [x, x] and p = 0.
            whose = "one speaker" if speakers < 2 else f"reference {refs[factor]} has one speaker"
            effects.append(Effect(factor, level, refs[factor], _finite(np.exp(params[i])), [None, None], None,
                                  speakers, whose))
            continue
        ratio, ci, p_value = _wald(params[i], se[i], n_clusters - 1, confidence)
        effects.append(Effect(factor, level, refs[factor], ratio, ci, p_value, speakers))
    per_level = [(int(n), f"{f}={level}") for f in factors for level, n in speakers_by_level[f].items()]
    fewest_level = min(per_level)
    caution = (
        f"only {fewest_level[0]} speaker{'' if fewest_level[0] == 1 else 's'} at {fewest_level[1]} (the fewest of "
        f"any level): with fewer than "
        f"{_FEW_CLUSTERS} speakers per level the intervals are approximate (docs/statistics.md, Calibration)"
        if fewest_level[0] < _FEW_CLUSTERS
        else None
    )
    return ModelResult(
        method,
        factors,
        refs,
        effects,
        _finite(np.exp(params[0])),
        len(rows),
        n_clusters,
        dropped,
        None,
        caution,
    )


def _fit(rows: pd.DataFrame, design: pd.DataFrame, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and their bias-reduced (Mancl–DeRouen) sandwich standard errors; the plain
    sandwich where the bias correction is undefined (a cluster with leverage 1)."""
    # deferred, and not through statsmodels.api, which also imports its plotting and time series
    from statsmodels.genmod import cov_struct, families
    from statsmodels.genmod.generalized_estimating_equations import GEE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; failure is reported by the caller
        model = GEE(
            rows["errors"].to_numpy(float),
            design,
            groups=clusters,
            offset=np.log(rows["ref_words"].to_numpy(float)),
            family=families.Poisson(),
            cov_struct=cov_struct.Independence(),
        )
        try:
            fit = model.fit(cov_type="bias_reduced")
            se = np.asarray(fit.bse)
        except (np.linalg.LinAlgError, ValueError):
            se = np.full(design.shape[1], np.nan)
        if not np.isfinite(se).all():
            fit = model.fit(cov_type="robust")
            se = np.where(np.isfinite(se), se, np.asarray(fit.bse))
    return np.asarray(fit.params), se


def _wald(coefficient: float, se: float, df: int, confidence: float) -> tuple:
    """Rate ratio, its interval and p from the t distribution with ``df`` degrees of freedom."""
    if not np.isfinite(se) or se <= 0:
        return _finite(np.exp(coefficient)), [None, None], None
    q = stats.t.ppf(0.5 + confidence / 2, df)
    p_value = 2 * stats.t.sf(abs(coefficient / se), df)
    bounds = np.exp([coefficient - q * se, coefficient + q * se])
    return _finite(np.exp(coefficient)), [_finite(bounds[0]), _finite(bounds[1])], _finite(p_value)


def _choose_factors(rows: pd.DataFrame, candidates: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    chosen: list[str] = []
    dropped: dict[str, str] = {}
    for factor in candidates:
        if factor not in rows:
            dropped[factor] = "not a tag of this run"
            continue
        missing = int(rows[factor].isna().sum())
        if missing:  # keeping it would silently narrow the model to the rows that have it
            dropped[factor] = f"missing for {missing} of {len(rows)} utterances"
            continue
        if rows[factor].nunique() < 2:
            dropped[factor] = "one level only"
            continue
        trial = [*chosen, factor]
        # The design's rank is the rank of its distinct rows: cheap even for millions of utterances.
        distinct = rows[trial].drop_duplicates()
        design = _design(distinct, trial, {f: distinct[f].iloc[0] for f in trial}).to_numpy(float)
        if np.linalg.matrix_rank(design) < design.shape[1]:
            dropped[factor] = f"nested in or collinear with {', '.join(chosen)}"
            continue
        chosen.append(factor)
    return chosen, dropped


def _reference(rows: pd.DataFrame, factor: str, wanted: str | None) -> str:
    """The configured reference if it has errors, else the level with the most reference words
    among levels with at least one error (a zero-error reference makes every ratio infinite)."""
    totals = rows.groupby(factor)[["ref_words", "errors"]].sum()
    with_errors = totals[totals["errors"] > 0]
    if wanted is not None and wanted in with_errors.index:
        return wanted
    if wanted is not None:
        log.warning("rate model: reference %s=%s has no errors or no rows; using another level", factor, wanted)
    return str((with_errors if len(with_errors) else totals)["ref_words"].idxmax())


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _design(rows: pd.DataFrame, factors: Sequence[str], refs: Mapping[str, str]) -> pd.DataFrame:
    columns = {("", "intercept"): np.ones(len(rows))}
    for factor in factors:
        values = rows[factor].astype(str)
        for level in sorted(set(values) - {refs[factor]}):
            columns[(factor, level)] = (values == level).to_numpy(float)
    return pd.DataFrame(columns, index=rows.index)
