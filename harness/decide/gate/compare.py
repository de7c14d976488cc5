"""The two runs side by side: paired on their shared utterances (per simulated condition), the
paired ΔWER per slice and dimension, and what makes the pair not like for like."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.conditions import CONDITION_TAG
from harness.decide.gate.sides import RunSide, load_side
from harness.errors import InputError
from harness.stats.by_slice import StatsOptions
from harness.stats.degradation import degradation
from harness.stats.records import Degradation
from harness.stats.slices import SliceSpec

RUN_TAG = "run"  # the two runs become the two "conditions" of the paired comparison
HEARD_UNDER = "heard_under"  # a run's own simulated-condition column, renamed out of the way


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
class RunComparison:
    """Both runs on their shared utterances, and the paired ΔWER of :func:`degradation`."""

    table: pd.DataFrame  # see paired_table
    specs: list[SliceSpec]
    result: Degradation | None  # None without shared utterances
    shared: int
    only_in_baseline: int
    only_in_candidate: int


def compare(baseline: RunSide, candidate: RunSide, *, confidence: float, bootstrap: int, seed: int) -> RunComparison:
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
    return RunComparison(table, specs, result, shared, only_a, only_b)


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


def unfair_comparison_warnings(baseline: RunSide, candidate: RunSide, comparison: RunComparison) -> list[str]:
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
