"""Finding files: a discovered subgroup written so that anyone can re-check it.

A finding file (YAML) holds the subgroup as a slice definition, the dataset and backend
fingerprints and the normaliser it was found under, the confirmation-half estimate with its
interval, and every setting of the search (seed included). ``asrfair verify`` re-evaluates it on
any run, the same or a new dataset or backend, and says whether it holds, with numbers: this is
how an outside party submits a finding and the model owner checks it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness import __version__
from harness.errors import InputError, format_validation_error
from harness.files import write_yaml
from harness.results import json_safe
from harness.stats.discover import DiscoverOptions, Discovery, Estimate, Finding, describe, evaluate
from harness.stats.multiplicity import p_text
from harness.yamlfile import read_yaml

FINDING_SCHEMA = "asrfair.finding/1"
DISCOVERY_SCHEMA = "asrfair.discovery/1"


def scoring_stamp(provenance: dict[str, Any]) -> dict[str, Any]:
    """What a discovery was computed from: a rescore makes it stale."""
    return {
        "normalizer": provenance.get("normalizer"),
        "scored_utc": provenance.get("rescored_utc") or provenance.get("created_utc"),
    }


def discovery_block(result: Discovery, provenance: dict[str, Any]) -> dict[str, Any]:
    """discovery.json: the search's settings, counts, findings (worst first) and what was pruned."""
    return json_safe(
        {
            "schema": DISCOVERY_SCHEMA,
            "scored": scoring_stamp(provenance),
            "created_utc": _now(),
            **asdict(result),
            "findings": [{"label": f.label, **asdict(f)} for f in result.findings],
        }
    )


def current_discovery(path: Path, provenance: dict[str, Any]) -> dict[str, Any] | None:
    """The run's discovery.json when it was made from the current scoring; None otherwise."""
    if not path.is_file():
        return None
    try:
        block = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return block if isinstance(block, dict) and block.get("scored") == scoring_stamp(provenance) else None


def write_finding(folder: Path, finding: Finding, result: Discovery, provenance: dict[str, Any], rank: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(f"{t}-{v}" for t, v in finding.conditions.items())).strip("-")
    path = folder / f"finding-{rank:02d}-{slug[:80]}.yaml"
    manifest, backend = provenance.get("manifest", {}), provenance.get("backend", {})
    write_yaml(
        path,
        {
            "schema": FINDING_SCHEMA,
            "claim": f"WER is higher for {finding.label} than for everyone else",
            "subgroup": finding.conditions,
            "slice": finding.slice_spec().model_dump(mode="json", exclude_defaults=True),
            "estimate": _estimate_dict(finding.confirmation),
            "search": {**_estimate_dict(finding.search), "q_value": finding.search_q},
            "confirmation_q_value": finding.confirmation_q,
            "found_on": {
                "run": provenance.get("run_name"),
                "dataset": {"path": manifest.get("path"), "sha256": manifest.get("sha256")},
                "backend": {"name": backend.get("name"), "id": backend.get("id"), "model": backend.get("model")},
                "normalizer": provenance.get("normalizer"),
            },
            "method": {"description": result.method, **asdict(result.options)},
            "created_utc": _now(),
            "harness_version": __version__,
        },
    )
    return path


def _estimate_dict(estimate: Estimate) -> dict[str, Any]:
    return {k: v for k, v in json_safe(asdict(estimate)).items() if v is not None}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FoundMethod(_Open):
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    alpha: float | None = Field(None, gt=0.0, lt=0.5)
    bootstrap: int = Field(1000, ge=0)
    seed: int = 0
    min_speakers: int = Field(2, ge=1)
    min_words: int = Field(1, ge=1)


class FoundDataset(_Open):
    path: str | None = None
    sha256: str | None = None


class FoundBackend(_Open):
    name: str | None = None
    id: str | None = None


class FoundOn(_Open):
    dataset: FoundDataset = Field(default_factory=FoundDataset)
    backend: FoundBackend = Field(default_factory=FoundBackend)
    normalizer: str | None = None


class ClaimedEstimate(_Open):
    wer: float | None = None
    complement_wer: float | None = None
    difference: float | None = None
    difference_ci: list[float | None] | None = Field(None, min_length=2, max_length=2)


class FindingFile(_Open):
    """What ``verify`` needs of a finding file, typed; the rest is kept for the reader."""

    schema_: str = Field(alias="schema")
    subgroup: dict[str, str] = Field(min_length=1)
    estimate: ClaimedEstimate = Field(default_factory=ClaimedEstimate)
    method: FoundMethod = Field(default_factory=FoundMethod)
    found_on: FoundOn = Field(default_factory=FoundOn)


def read_finding(path: Path) -> FindingFile:
    data = read_yaml(path, "finding")
    try:
        finding = FindingFile.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: {format_validation_error(exc, model=FindingFile)}") from None
    if finding.schema_ != FINDING_SCHEMA:
        raise InputError(f"{path}: 'schema': {finding.schema_!r} is not a finding file ({FINDING_SCHEMA})")
    return finding


@dataclass(frozen=True)
class Verdict:
    holds: bool
    subgroup: str
    reason: str
    claimed: dict[str, Any]
    now: dict[str, Any] | None
    run: str
    differences: list[str]  # how the run differs from the one the finding came from


def verify(
    finding: FindingFile, table: pd.DataFrame, provenance: dict[str, Any], run_dir: Path, source: Path
) -> Verdict:
    method = finding.method
    options = DiscoverOptions(confidence=method.confidence, bootstrap=method.bootstrap, seed=method.seed)
    alpha = method.alpha if method.alpha is not None else round(1 - method.confidence, 12)
    claimed = finding.estimate.model_dump(exclude_none=True)
    label = describe(finding.subgroup)
    try:
        estimate = evaluate(table, finding.subgroup, options)
    except KeyError as exc:
        raise InputError(f"{source}: 'subgroup': the run {run_dir} has no tag {exc.args[0]!r}") from None
    differences = _differences(finding.found_on, provenance)
    if estimate is None:
        reason = "no utterance of the run is in the subgroup (or every one is)"
        return Verdict(False, label, reason, claimed, None, str(run_dir), differences)
    low = (estimate.difference_ci or [None])[0]
    interval_above = low is not None and low > 0 if options.bootstrap else True  # no replicates: the test decides
    supported = estimate.speakers >= method.min_speakers and estimate.words >= method.min_words
    holds = estimate.difference > 0 and estimate.p_value < alpha and interval_above and supported
    if not supported:
        reason = (
            f"only {estimate.speakers} speakers and {estimate.words} words are in the subgroup here, under the "
            f"search's support ({method.min_speakers} speakers, {method.min_words} words): too little to tell"
        )
    elif holds:
        reason = (
            f"WER is higher in the subgroup (one-sided p {p_text(estimate.p_value)}, below {alpha:g}; interval above 0)"
        )
    elif estimate.difference <= 0:
        reason = "the subgroup's WER is not higher than its complement's"
    elif not interval_above:
        reason = f"the interval of the difference reaches 0 (p {p_text(estimate.p_value)})"
    else:
        reason = f"the difference is not distinguishable from noise (p {p_text(estimate.p_value)}, alpha {alpha:g})"
    return Verdict(holds, label, reason, claimed, json_safe(asdict(estimate)), str(run_dir), differences)


def _differences(found_on: FoundOn, provenance: dict[str, Any]) -> list[str]:
    said = []
    backend = provenance.get("backend", {})
    if found_on.dataset.sha256 and found_on.dataset.sha256 != provenance.get("manifest", {}).get("sha256"):
        said.append("another dataset (manifest sha256 differs)")
    if found_on.backend.id and found_on.backend.id != backend.get("id"):
        said.append(f"another backend ({backend.get('name')} {backend.get('id')})")
    if found_on.normalizer and found_on.normalizer != provenance.get("normalizer"):
        said.append(f"another normaliser ({provenance.get('normalizer')} instead of {found_on.normalizer})")
    return said


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
