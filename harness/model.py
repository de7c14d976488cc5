"""Model-based view: each tag's effect on the error rate, *controlled for* the other tags.

A slice table answers "how bad is WER for Scottish speakers?"; if Scottish speakers were also
recorded on worse microphones, part of that gap is the microphone. Following Liu et al. (2022,
"Towards measuring fairness in speech recognition: Casual Conversations dataset transcriptions")
we fit a Poisson GEE of per-utterance errors with a log(reference words) offset, utterances
clustered by speaker (exchangeable within speaker is absorbed by the robust sandwich errors),
and the tags as factors. ``exp(coefficient)`` is a level's error-rate ratio against its
factor's reference level, holding the other factors fixed.

Factors that add no information (one level) or are nested in factors already in the model
(dialect within accent) would make the design singular; they are dropped and reported.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.slices import SliceSpec
from harness.stats import cluster_units

log = logging.getLogger(__name__)
_FEW_CLUSTERS = 40


@dataclass(frozen=True)
class Effect:
    """``None`` where the data cannot say: a level without a single error has no finite log-rate."""

    factor: str
    level: str
    reference: str
    rate_ratio: float | None
    ci: list[float | None]
    p_value: float | None


@dataclass(frozen=True)
class ModelResult:
    method: str
    factors: list[str]
    references: dict[str, str]
    effects: list[Effect] = field(default_factory=list)
    baseline_rate: float | None = None  # errors per reference word at every factor's reference level
    utterances: int = 0
    speakers: int = 0
    dropped: dict[str, str] = field(default_factory=dict)  # factor -> why it is not in the model
    error: str | None = None
    caution: str | None = None


def model_for_slices(
    table: pd.DataFrame, specs: Sequence[SliceSpec], factors: Sequence[str] | None, confidence: float
) -> ModelResult:
    """Default factors: every single-tag dimension, in slice-file order; references from the slices."""
    single = [spec for spec in specs if len(spec.by) == 1 and not spec.bins and not spec.groups]
    candidates = list(factors) if factors else list(dict.fromkeys(spec.by[0] for spec in single))
    references = {spec.by[0]: spec.reference for spec in single if spec.reference}
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
    method = "Poisson GEE, log(words) offset, speaker clusters, robust SE"
    rows = table[(table["status"] == "ok") & (table["ref_words"] > 0)]
    factors, dropped = _choose_factors(rows, candidates)
    refs = {f: _reference(rows, f, references.get(f)) for f in factors}
    if not factors or rows.empty:
        return ModelResult(method, factors, refs, dropped=dropped, error="no factor with two or more levels to model")
    design = _design(rows, factors, refs)
    clusters = pd.factorize(cluster_units(rows))[0]
    try:
        # deferred, and not through statsmodels.api, which also imports its plotting and time series
        from statsmodels.genmod import cov_struct, families
        from statsmodels.genmod.generalized_estimating_equations import GEE

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; failure is reported below
            fit = GEE(
                rows["errors"].to_numpy(float),
                design,
                groups=clusters,
                offset=np.log(rows["ref_words"].to_numpy(float)),
                family=families.Poisson(),
                cov_struct=cov_struct.Independence(),
            ).fit()
            params, bounds = np.asarray(fit.params), np.asarray(fit.conf_int(alpha=1 - confidence))
            p_values = np.asarray(fit.pvalues)
    except Exception as exc:  # statsmodels raises many types on degenerate data; the run goes on
        log.warning("rate model could not be fitted: %s", exc)
        return ModelResult(method, factors, refs, dropped=dropped, error=f"{type(exc).__name__}: {exc}")
    errors_by_level = {f: rows.groupby(f)["errors"].sum() for f in factors}
    effects = [
        # A level without a single error has no finite log-rate: the fit's estimate for it is an
        # artefact (a huge negative coefficient with a tiny error), so it is reported as unknown.
        Effect(factor, level, refs[factor], *_ratio(params[i], bounds[i], p_values[i]))
        if errors_by_level[factor][level] > 0
        else Effect(factor, level, refs[factor], None, [None, None], None)
        for i, (factor, level) in enumerate(design.columns)
        if factor  # column 0 is the intercept
    ]
    speakers = int(clusters.max()) + 1
    caution = (
        f"only {speakers} speakers: robust (sandwich) standard errors are too small with fewer than ~{_FEW_CLUSTERS} "
        "clusters, so these intervals and p-values are optimistic; trust the permutation tests"
        if speakers < _FEW_CLUSTERS
        else None
    )
    return ModelResult(
        method, factors, refs, effects, _finite(np.exp(params[0])), len(rows), speakers, dropped, None, caution
    )


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


def _ratio(coefficient: float, bounds: np.ndarray, p_value: float) -> tuple:
    return _finite(np.exp(coefficient)), [_finite(np.exp(bounds[0])), _finite(np.exp(bounds[1]))], _finite(p_value)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _design(rows: pd.DataFrame, factors: Sequence[str], refs: Mapping[str, str]) -> pd.DataFrame:
    columns = {("", "intercept"): np.ones(len(rows))}
    for factor in factors:
        values = rows[factor].astype(str)
        for level in sorted(set(values) - {refs[factor]}):
            columns[(factor, level)] = (values == level).to_numpy(float)
    return pd.DataFrame(columns, index=rows.index)
