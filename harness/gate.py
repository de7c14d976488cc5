"""Regression gate: is a candidate run worse, or less fair, than a baseline — beyond noise?

Both runs are compared **paired** on the utterances they share (by id, and by simulated
condition when the runs have them) and scored in both. Each check — overall WER, each ranked
slice's WER, each dimension's gap and ratio, the failure rate — fails only when its change
exceeds every threshold set for it **and** a paired speaker-level test says it is real:

* the interval shown is the speaker-clustered bootstrap of :mod:`harness.degradation` (the two
  runs as its two "conditions", the same speakers drawn for both in each replicate);
* the decision is a **sign-flip test**: under "same model", swapping which run a speaker's
  transcripts came from changes nothing, so flipping speakers at random gives the null
  distribution of every check at once. One-sided p-values are Holm-corrected over all checks, so
  noise alone fails the gate with probability at most ``1 - confidence``. (Bootstrap intervals
  alone, even Bonferroni-adjusted, failed 20 % of no-change pairs with 8 speakers per slice: the
  percentile bootstrap is too narrow with few clusters. The sign-flip test is exact.)

Failure rates are counted, not estimated, and are checked against thresholds only.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ValidationError
from scipy import sparse

from harness.audio import file_sha256
from harness.conditions import CONDITION_TAG
from harness.config import GateConfig, RunConfig
from harness.degradation import Degradation, compared_dimensions, degradation, pair_conditions
from harness.errors import InputError, format_validation_error
from harness.integrity import check_sealed
from harness.significance import holm
from harness.slices import SliceSpec, TagCodes, slice_codes
from harness.stats import Interval, StatsOptions
from harness.store import check_metrics_schema, open_run_dir, write_atomic, write_json
from harness.yamlfile import read_yaml

BASELINE_SCHEMA = "asrfair.baseline/1"
GATE_SCHEMA = "asrfair.gate/1"
RUN_TAG = "run"  # the two runs become the two "conditions" of the paired comparison
HEARD_UNDER = "heard_under"  # a run's own simulated-condition column, renamed out of the way
Status = Literal["pass", "regression", "improved", "not tested"]


@dataclass(frozen=True)
class RunSide:
    """One side of a comparison: a finished run directory or a saved baseline."""

    label: str
    source: Path
    table: pd.DataFrame  # scored utterances (utterances.parquet)
    metrics: dict[str, Any]
    config: RunConfig
    run_id: str  # the run directory's name, also for a saved baseline

    @property
    def provenance(self) -> dict[str, Any]:
        return self.metrics.get("provenance", {})

    @property
    def failure_rate(self) -> float:
        return float((self.table["status"] != "ok").mean()) if len(self.table) else 0.0

    def describe(self) -> dict[str, Any]:
        backend = self.provenance.get("backend", {})
        normalizer, normalizer_sha256, normalizer_library = scoring_normalizer(self.provenance)
        return {
            "source": str(self.source),
            "run": self.provenance.get("run_name"),
            "run_id": self.run_id,
            "backend": backend.get("name"),
            "fingerprint": backend.get("id"),
            "manifest_sha256": self.provenance.get("manifest", {}).get("sha256"),
            "normalizer": normalizer,
            "normalizer_sha256": normalizer_sha256,
            "normalizer_library": normalizer_library,
        }


_LEGACY_WHISPER_STAMP = re.compile(r"^whisper-english@(\d+(?:\.\d+)+)$")


def scoring_normalizer(provenance: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(stamp, a YAML normaliser's sha256, the library behind a preset) of a run's scoring. Runs
    scored before presets had versions of their own were stamped with whisper-normalizer's
    version (``whisper-english@0.1.15``): the rules of ``whisper-english@1``, read as such."""
    stamp = provenance.get("normalizer")
    definition = provenance.get("normalizer_definition") or {}
    legacy = _LEGACY_WHISPER_STAMP.match(stamp or "")
    if legacy and not definition:
        return "whisper-english@1", None, f"whisper-normalizer {legacy[1]}"
    return stamp, definition.get("sha256"), definition.get("library")


@dataclass(frozen=True)
class Check:
    name: str
    kind: Literal["wer", "slice_wer", "gap", "ratio", "failure_rate", "max_failure_rate"]
    baseline: float | None
    candidate: float | None
    delta: float | None
    ci: Interval | None
    threshold: str
    status: Status
    reason: str
    p_value: float | None = None  # one-sided sign-flip p, Holm-adjusted over the gate's checks


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: list[Check]
    warnings: list[str]
    baseline: dict[str, Any]
    candidate: dict[str, Any]
    shared_utterances: int
    only_in_baseline: int
    only_in_candidate: int
    confidence: float  # family-wise, and of each interval
    tests: int  # checks in the Holm family
    bootstrap: int
    thresholds: dict[str, Any] = field(default_factory=dict)
    schema: str = GATE_SCHEMA

    @property
    def regressions(self) -> list[Check]:
        return [c for c in self.checks if c.status == "regression"]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "regressions": len(self.regressions)}


# --- loading ---------------------------------------------------------------------------------


def load_side(path: Path, label: str) -> RunSide:
    """A run directory, or a baseline JSON written by :func:`save_baseline`."""
    if path.is_dir():
        paths = open_run_dir(path)
        check_sealed(path)
        if not paths.utterances.is_file() or not paths.metrics.is_file():
            raise InputError(f"{path}: the run did not finish scoring (no metrics.json); {paths.completion_hint()}")
        table, metrics, config = _read_table(paths.utterances), _read_json(paths.metrics), _read_config(paths.config)
        check_metrics_schema(metrics, paths.metrics, provenance_only=True)  # the gate reads its provenance only
        return RunSide(label, path, table, metrics, config, path.resolve().name)
    if path.suffix == ".json" and path.is_file():
        saved = _read_json(path)
        if not isinstance(saved, dict) or saved.get("schema") != BASELINE_SCHEMA:
            schema = saved.get("schema") if isinstance(saved, dict) else None
            raise InputError(
                f"{path}: not an asrfair baseline (schema {schema!r}); make one:  'asrfair baseline set'"
            )
        recorded_body = saved.pop("sha256", None)  # baselines set before it existed have none
        if recorded_body is not None and recorded_body != _body_sha256(saved):
            raise InputError(f"{path}: changed since 'asrfair baseline set' wrote it (sha256 differs); set it again")
        if not isinstance(saved.get("utterances"), str) or not isinstance(saved.get("metrics"), dict):
            raise InputError(f"{path}: 'utterances' or 'metrics' missing or of the wrong type; set the baseline again")
        table_path = path.parent / saved["utterances"]
        recorded = saved.get("utterances_sha256")  # baselines set before it existed have none
        if recorded and table_path.is_file() and file_sha256(table_path) != recorded:
            raise InputError(
                f"{table_path}: not the table {path.name} was saved with (an interrupted 'asrfair baseline set', "
                "or one file of the pair edited); set the baseline again"
            )
        try:
            config = RunConfig.model_validate(saved["config"])
        except ValidationError as exc:
            raise InputError(f"{path}: 'config': {format_validation_error(exc)}") from None
        return RunSide(label, path, _read_table(table_path), saved["metrics"], config, str(saved.get("run_id")))
    raise InputError(f"{path}: not found, or neither a run directory nor a baseline .json")


def save_baseline(run_dir: Path, out: Path) -> Path:
    """Write ``out`` (JSON: fingerprints, normaliser, config, metrics) and its utterance table beside it."""
    side = load_side(run_dir, "baseline")
    if out.suffix != ".json":
        raise InputError(f"-o {out}: a baseline is a .json file (its utterance table is written beside it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    table_path = out.with_suffix(".utterances.parquet")
    source = open_run_dir(run_dir).utterances
    # the table first, the JSON naming its hash last: a kill between leaves a pair load_side refuses
    write_atomic(table_path, lambda tmp: shutil.copyfile(source, tmp))
    body = {
        "schema": BASELINE_SCHEMA,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "from_run": str(run_dir.resolve()),
        **{k: v for k, v in side.describe().items() if k != "source"},
        "utterances": table_path.name,
        "utterances_sha256": file_sha256(table_path),
        "config": side.config.model_dump(mode="json"),
        "metrics": side.metrics,
    }
    write_json(out, {**body, "sha256": _body_sha256(body)})
    return out


def _body_sha256(body: dict[str, Any]) -> str:
    """Checksum of a baseline's JSON without its own ``sha256`` key: a hand edit is refused on loading."""
    import hashlib
    import json

    text = json.dumps(body, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from None


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable JSON ({exc})") from None


def _read_config(path: Path) -> RunConfig:
    try:
        return RunConfig.model_validate(read_yaml(path, "run config"))
    except ValidationError as exc:
        raise InputError(f"{path}: {format_validation_error(exc)}") from None


# --- comparison ------------------------------------------------------------------------------


def paired_table(baseline: RunSide, candidate: RunSide) -> tuple[pd.DataFrame, int, int, int]:
    """Both runs' rows stacked with a ``run`` column, keyed so that each utterance (under each
    simulated condition) pairs with itself; plus the shared / only-baseline / only-candidate counts."""
    frames = []
    for side in (baseline, candidate):
        frame = side.table.copy()
        if CONDITION_TAG in frame.columns:
            frame["id"] = frame["id"].astype(str) + "@" + frame[CONDITION_TAG].astype(str)
            frame = frame.rename(columns={CONDITION_TAG: HEARD_UNDER})
        frames.append(frame.assign(**{RUN_TAG: side.label}))
    ids = [set(f["id"]) for f in frames]
    shared = ids[0] & ids[1]
    both = pd.concat([f[f["id"].isin(shared)] for f in frames], ignore_index=True)
    return both.rename(columns={RUN_TAG: CONDITION_TAG}), len(shared), len(ids[0] - shared), len(ids[1] - shared)


def comparison_specs(candidate: RunSide) -> list[SliceSpec]:
    """The candidate's slices, with its simulated-condition tag renamed as in :func:`paired_table`."""
    raw = candidate.provenance.get("slices") or []
    specs = []
    for item in raw:
        spec = SliceSpec.model_validate(item)
        by = tuple(HEARD_UNDER if tag == CONDITION_TAG else tag for tag in spec.by)
        where = (
            spec.where
            if isinstance(spec.where, str)
            else {(HEARD_UNDER if tag == CONDITION_TAG else tag): values for tag, values in spec.where.items()}
        )
        name = spec.name or " × ".join(spec.by)  # reports keep the run's own dimension names
        specs.append(spec.model_copy(update={"by": by, "where": where, "name": name}))
    return specs


@dataclass(frozen=True)
class Comparison:
    """Both runs on their shared utterances, and the paired ΔWER of :func:`degradation`."""

    table: pd.DataFrame  # see paired_table
    specs: list[SliceSpec]
    result: Degradation | None  # None without shared utterances
    shared: int
    only_in_baseline: int
    only_in_candidate: int


def compare(baseline: RunSide, candidate: RunSide, *, confidence: float, bootstrap: int, seed: int) -> Comparison:
    """Paired ΔWER overall, per slice and per dimension's disparity, candidate minus baseline."""
    table, shared, only_a, only_b = paired_table(baseline, candidate)
    specs = comparison_specs(candidate)
    stats = candidate.config.stats
    options = StatsOptions(
        min_speakers=stats.min_speakers,
        min_words=stats.min_words,
        bootstrap=bootstrap,
        confidence=confidence,
        seed=seed,
        permutations=0,
    )
    labels = [baseline.label, candidate.label]
    result = degradation(table, specs, labels, {}, options) if shared else None
    return Comparison(table, specs, result, shared, only_a, only_b)


# --- the gate --------------------------------------------------------------------------------


def run_gate(baseline: RunSide, candidate: RunSide, gate: GateConfig, *, force: bool = False) -> GateResult:
    """Raises InputError when the runs were scored under different normalisers, unless ``force``."""
    scoring = normalizer_mismatch(baseline, candidate, force=force)
    comparison = compare(baseline, candidate, confidence=gate.confidence, bootstrap=gate.bootstrap, seed=gate.seed)
    p_values = sign_flip_p_values(comparison, gate)
    checks = [*_wer_checks(comparison.result, gate, p_values), *_failure_checks(baseline, candidate, gate)]
    warnings = [*scoring, *unfair_comparison_warnings(baseline, candidate, comparison)]
    blind = [c.name.removesuffix(" WER") for c in checks if "cannot tell" in c.reason]
    if blind:
        warnings.append(
            f"changed beyond the threshold but too few speakers for any test to call it real: {', '.join(blind)}; "
            "the gate cannot fail on these slices until more speakers are recorded"
        )
    return GateResult(
        passed=not any(c.status == "regression" for c in checks),
        checks=sorted(checks, key=lambda c: ("regression", "improved", "pass", "not tested").index(c.status)),
        warnings=warnings,
        baseline=baseline.describe(),
        candidate=candidate.describe(),
        shared_utterances=comparison.shared,
        only_in_baseline=comparison.only_in_baseline,
        only_in_candidate=comparison.only_in_candidate,
        confidence=gate.confidence,
        tests=len(p_values),
        bootstrap=gate.bootstrap,
        thresholds=gate.model_dump(),
    )


def sign_flip_p_values(comparison: Comparison, gate: GateConfig) -> dict[str, float]:
    """Holm-adjusted one-sided p-values of every bootstrap-free check, keyed by check name."""
    result = comparison.result
    if result is None:
        return {}
    paired = pair_conditions(comparison.table, [c.name for c in result.conditions])
    diff = paired.errors[1] - paired.errors[0]
    rng = np.random.default_rng(gate.seed)
    flips = rng.integers(0, 2, size=(gate.flips, paired.n_clusters)).astype(np.float64)  # 1: swap the runs
    coder = TagCodes(paired.reference_rows)
    specs = compared_dimensions(comparison.specs)  # the dimensions of result.dimensions, in order
    raw: dict[str, float] = {}
    everyone = np.zeros(len(diff), dtype=np.int64)
    if _is_set(gate.wer_increase, gate.wer_increase_relative):
        raw["overall WER"] = _flip_p(_sums(everyone, 1, paired, diff)[1], flips)[0]
    for spec, dim in zip(specs, result.dimensions, strict=True):
        codes = slice_codes(paired.reference_rows, spec, coder)
        k = len(codes.labels)
        base_sum, change_sum, words = _sums(codes.codes, k, paired, diff)
        ranked = np.array([s.supported for s in dim.slices])
        if k < 2:
            continue
        if _is_set(gate.slice_wer_increase, gate.slice_wer_increase_relative):
            p = _flip_p(change_sum, flips)
            raw.update({f"{dim.name}={label} WER": p[i] for i, label in enumerate(codes.labels) if ranked[i]})
        if ranked.sum() >= 2:
            spreads = _flip_spread(base_sum, change_sum, words, flips, ranked)
            for kind, enabled in (
                ("gap (worst − best)", gate.gap_increase),
                ("ratio (worst / best)", gate.ratio_increase),
            ):
                if enabled is not None:
                    raw[f"{dim.name} {kind}"] = spreads[kind.split()[0]]
    adjusted = holm(list(raw.values())) if raw else []
    return dict(zip(raw, adjusted, strict=True))


def _sums(codes: np.ndarray, k: int, paired: Any, diff: np.ndarray) -> tuple[np.ndarray, sparse.csr_matrix, np.ndarray]:
    """Per slice: baseline errors, the (cluster × slice) candidate-minus-baseline errors, words."""
    inside = codes >= 0
    base = np.bincount(codes[inside], weights=paired.errors[0][inside], minlength=k)
    words = np.bincount(codes[inside], weights=paired.words[inside], minlength=k)
    change = sparse.coo_matrix(
        (diff[inside], (paired.cluster[inside], codes[inside])), shape=(paired.n_clusters, k)
    ).tocsr()
    return base, change, words


def _flip_p(change: sparse.csr_matrix, flips: np.ndarray) -> np.ndarray:
    """P(ΔWER under random speaker swaps ≥ the observed ΔWER), per slice (words are fixed, so errors suffice)."""
    observed = np.asarray(change.sum(axis=0)).ravel()
    null = observed - 2 * (change.T @ flips.T).T  # a swapped speaker's change changes sign
    return (1 + (null >= observed - 1e-9).sum(axis=0)) / (len(flips) + 1)


def _flip_spread(
    base: np.ndarray, change: sparse.csr_matrix, words: np.ndarray, flips: np.ndarray, ranked: np.ndarray
) -> dict[str, float]:
    """Sign-flip p-values of the rise in the gap (max − min) and ratio (max / min) of ranked slices."""
    total = np.asarray(change.sum(axis=0)).ravel()
    swapped = (change.T @ flips.T).T  # per flip, per slice: the change moved from candidate to baseline
    safe = np.where(words > 0, words, 1.0)
    a = ((base + swapped) / safe)[:, ranked]
    b = ((base + total - swapped) / safe)[:, ranked]
    a0, b0 = (base / safe)[ranked], ((base + total) / safe)[ranked]
    out = {}
    for kind, spread in (("gap", lambda w: w.max(-1) - w.min(-1)), ("ratio", _ratio)):
        observed = spread(b0) - spread(a0)
        null = spread(b) - spread(a)
        out[kind] = float((1 + np.sum(null >= observed - 1e-9)) / (len(flips) + 1))
    return out


def _ratio(wers: np.ndarray) -> np.ndarray:
    low = wers.min(-1)
    return np.where(low > 0, wers.max(-1) / np.where(low > 0, low, 1.0), np.inf)


def _is_set(*thresholds: float | None) -> bool:
    return any(t is not None for t in thresholds)


def _wer_checks(result: Degradation | None, gate: GateConfig, p_values: dict[str, float]) -> list[Check]:
    if result is None:
        return [Check("overall WER", "wer", None, None, None, None, "", "not tested", "no shared utterances")]
    checks, alpha = [], 1 - gate.confidence
    if _is_set(gate.wer_increase, gate.wer_increase_relative):
        base, cand = result.conditions
        checks.append(
            judge(
                "overall WER",
                "wer",
                base.wer,
                cand.wer,
                cand.delta_ci,
                gate.wer_increase,
                gate.wer_increase_relative,
                p_values,
                alpha,
                speakers=result.paired_speakers,
            )
        )
    for dim in result.dimensions:
        if len(dim.slices) < 2:  # one value (device=tts): the same utterances as the overall check
            continue
        if _is_set(gate.slice_wer_increase, gate.slice_wer_increase_relative):
            for s in dim.slices:
                name = f"{dim.name}={s.label} WER"
                if not s.supported:
                    checks.append(
                        Check(
                            name,
                            "slice_wer",
                            s.cells[0].wer,
                            s.cells[1].wer,
                            s.cells[1].delta,
                            None,
                            "",
                            "not tested",
                            "too few speakers or words to rank (" + ", ".join(s.flags) + ")",
                        )
                    )
                    continue
                checks.append(
                    judge(
                        name,
                        "slice_wer",
                        s.cells[0].wer,
                        s.cells[1].wer,
                        s.cells[1].delta_ci,
                        gate.slice_wer_increase,
                        gate.slice_wer_increase_relative,
                        p_values,
                        alpha,
                        speakers=s.speakers,
                    )
                )
        shift = dim.shifts[0] if dim.shifts else None
        if dim.ranked < 2:  # one rankable slice: no disparity to check
            continue
        if gate.gap_increase is not None:
            base = dim.reference_gap
            checks.append(
                judge(
                    f"{dim.name} gap (worst − best)",
                    "gap",
                    base,
                    shift.gap if shift else None,
                    shift.gap_change_ci if shift else None,
                    gate.gap_increase,
                    None,
                    p_values,
                    alpha,
                )
            )
        if gate.ratio_increase is not None:
            checks.append(
                judge(
                    f"{dim.name} ratio (worst / best)",
                    "ratio",
                    dim.reference_ratio,
                    shift.ratio if shift else None,
                    shift.ratio_change_ci if shift else None,
                    gate.ratio_increase,
                    None,
                    p_values,
                    alpha,
                    unit="×",
                )
            )
    return checks


def judge(
    name: str,
    kind: Any,
    baseline: float | None,
    candidate: float | None,
    ci: Interval | None,
    absolute: float | None,
    relative: float | None,
    p_values: dict[str, float],
    alpha: float,
    unit: str = "pp",
    speakers: int | None = None,
) -> Check:
    """Regression: the change exceeds every threshold set and the Holm-adjusted sign-flip p < α."""
    threshold = describe_threshold(absolute, relative, unit)
    p = p_values.get(name)
    if baseline is None or candidate is None:
        return Check(name, kind, baseline, candidate, None, ci, threshold, "not tested", "no value in one of the runs")
    delta = candidate - baseline
    exceeds = (absolute is None or delta > absolute) and (
        relative is None or (baseline > 0 and delta / baseline > relative)
    )
    real = p is not None and p < alpha
    if exceeds and real:
        reason = f"above the threshold; p = {p:.4f} (Holm) < {alpha:g}"
        return Check(name, kind, baseline, candidate, delta, ci, threshold, "regression", reason, p)
    if ci is not None and ci[1] is not None and ci[1] < 0:
        return Check(name, kind, baseline, candidate, delta, ci, threshold, "improved", "interval below 0", p)
    if not exceeds:
        reason = "within the threshold"
    elif speakers is not None and 2.0**-speakers * len(p_values) >= alpha:
        reason = (
            f"above the threshold, but {speakers} speakers cannot tell any change from noise at this level "
            f"(smallest possible p = 2^-{speakers}, over {len(p_values)} checks): record more speakers"
        )
    else:
        reason = "above the threshold, but within noise" + (f" (p = {p:.3f}, Holm)" if p is not None else "")
    return Check(name, kind, baseline, candidate, delta, ci, threshold, "pass", reason, p)


def describe_threshold(absolute: float | None, relative: float | None, unit: str = "pp") -> str:
    parts = []
    if absolute is not None:
        parts.append(f"+{100 * absolute:.1f} pp" if unit == "pp" else f"+{absolute:.2f}×")
    if relative is not None:
        parts.append(f"+{100 * relative:.0f} % relative")
    return " and ".join(parts)


def _failure_checks(baseline: RunSide, candidate: RunSide, gate: GateConfig) -> list[Check]:
    """Failures are counted, not estimated: thresholds only."""
    a, b = baseline.failure_rate, candidate.failure_rate
    checks = []
    if gate.failure_rate_increase is not None:
        worse = b - a > gate.failure_rate_increase
        checks.append(
            Check(
                "failure rate",
                "failure_rate",
                a,
                b,
                b - a,
                None,
                describe_threshold(gate.failure_rate_increase, None),
                "regression" if worse else "pass",
                "more utterances failed" if worse else "within the threshold",
            )
        )
    if gate.max_failure_rate is not None:
        over = b > gate.max_failure_rate
        checks.append(
            Check(
                "failure rate (absolute)",
                "max_failure_rate",
                None,
                b,
                None,
                None,
                f"≤ {100 * gate.max_failure_rate:.1f} %",
                "regression" if over else "pass",
                "above the maximum" if over else "within the maximum",
            )
        )
    return checks


def normalizer_mismatch(first: RunSide, second: RunSide, *, force: bool) -> list[str]:
    """Runs scored under different normalisers are not comparable: the scoring rules alone move WER.
    Refuse (InputError, exit 2), or with ``force`` return the warning. A different version of the
    library behind the same preset is a warning only."""
    a, b = first.describe(), second.describe()
    if (a["normalizer"], a["normalizer_sha256"]) == (b["normalizer"], b["normalizer_sha256"]):
        if a["normalizer_library"] != b["normalizer_library"] and a["normalizer_library"] and b["normalizer_library"]:
            return [
                f"{a['normalizer']} was applied by {a['normalizer_library']} in the {first.label} and by "
                f"{b['normalizer_library']} in the {second.label}; if that package changed its rules, WER moves with it"
            ]
        return []
    if a["normalizer"] == b["normalizer"]:
        what = f"two different definitions of {a['normalizer']} (sha256 {str(a['normalizer_sha256'])[:12]} vs " + (
            f"{str(b['normalizer_sha256'])[:12]})"
        )
    else:
        what = f"{a['normalizer']} in the {first.label} and {b['normalizer']} in the {second.label}"
    message = f"the runs were scored under {what}: text normalisation alone changes WER"
    if not force:
        raise InputError(
            f"{message}; rescore one with 'asrfair score RUN_DIR --normalizer {a['normalizer']}', or pass --force "
            "to compare anyway"
        )
    return [f"{message}; compared anyway (--force), so part of any change is the scorer's"]


def unfair_comparison_warnings(baseline: RunSide, candidate: RunSide, comparison: Comparison) -> list[str]:
    """What makes the two runs not like for like: different data, slices, conditions (normalisers:
    :func:`normalizer_mismatch`)."""
    a, b = baseline.describe(), candidate.describe()
    warnings = []
    if a["manifest_sha256"] != b["manifest_sha256"]:
        warnings.append(
            "the manifests differ (sha256 "
            f"{str(a['manifest_sha256'])[:12]} vs {str(b['manifest_sha256'])[:12]}): "
            "only shared utterances are compared, and edited references change WER on their own"
        )
    procedure = {"bootstrap", "flips", "seed"}
    if baseline.config.gate.model_dump(exclude=procedure) != candidate.config.gate.model_dump(exclude=procedure):
        warnings.append(
            "the candidate's 'gate:' thresholds differ from the baseline's; the baseline's are used (the bar that was "
            "accepted), so re-baseline to change them"
        )
    if baseline.provenance.get("slices") != candidate.provenance.get("slices"):
        warnings.append("the runs were sliced differently; the candidate's slices are used")
    conditions = [[c.name for c in side.config.conditions] for side in (baseline, candidate)]
    if conditions[0] != conditions[1]:
        warnings.append(
            f"simulated conditions differ ({conditions[0]} vs {conditions[1]}); only shared ones are compared"
        )
    for count, where in (
        (comparison.only_in_baseline, "only in the baseline"),
        (comparison.only_in_candidate, "only in the candidate"),
    ):
        if count:
            warnings.append(
                f"{count} utterances are {where} and left out; {comparison.shared} shared utterances are compared"
            )
    if a["fingerprint"] and a["fingerprint"] == b["fingerprint"]:
        warnings.append("both runs used the same backend fingerprint: any change comes from nondeterminism or data")
    return warnings


def compare_sides(path_a: Path, path_b: Path, *, force: bool = False) -> dict[str, Any]:
    """``asrfair compare``: B against A on shared utterances, at B's configured confidence.
    Refuses runs scored under different normalisers unless ``force``."""
    a, b = load_side(path_a, "A"), load_side(path_b, "B")
    scoring = normalizer_mismatch(a, b, force=force)
    stats = b.config.stats
    comparison = compare(a, b, confidence=stats.confidence, bootstrap=stats.bootstrap, seed=stats.seed)
    result = comparison.result
    rows: dict[str, Any] = {
        "A": a.describe(),
        "B": b.describe(),
        "shared_utterances": comparison.shared,
        "confidence": stats.confidence,
        "warnings": [*scoring, *unfair_comparison_warnings(a, b, comparison)],
        "overall": None,
        "dimensions": [],
    }
    if result is None:
        return rows
    first, second = result.conditions
    rows["overall"] = {"A": first.wer, "B": second.wer, "delta": second.delta, "delta_ci": second.delta_ci}
    for dim in result.dimensions:
        shift = dim.shifts[0] if dim.shifts else None
        rows["dimensions"].append(
            {
                "name": dim.name,
                "slices": [
                    {
                        "label": s.label,
                        "A": s.cells[0].wer,
                        "B": s.cells[1].wer,
                        "delta": s.cells[1].delta,
                        "delta_ci": s.cells[1].delta_ci,
                        "speakers": s.speakers,
                        "words": s.words,
                        "supported": s.supported,
                    }
                    for s in dim.slices
                ],
                "gap": {
                    "A": dim.reference_gap,
                    "B": shift.gap if shift else None,
                    "change": shift.gap_change if shift else None,
                    "change_ci": shift.gap_change_ci if shift else None,
                },
            }
        )
    return rows
