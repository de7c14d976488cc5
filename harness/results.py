"""``metrics.json``: the versioned, machine-readable result of a run.

Schema ``asrfair.metrics/6`` (documented field by field in docs/metrics.md):
``schema``, ``caveats`` (the dataset card's: synthetic speech, licence, ...), ``provenance`` (what
produced the numbers), ``aggregate`` (the headline: ``pooled``
unless chosen otherwise), ``method``, ``stats`` (thresholds, bootstrap and test settings),
``overall`` and ``dimensions`` (the headline aggregate's block; each dimension with ``evidence``,
``slices``, ``disparity`` and ``test``), ``aggregates`` (the same block under each of ``pooled``,
``speaker-mean`` and ``utterance-mean``), ``aggregation`` (threshold, sensitivity flags), ``model``,
``conditions`` (the paired comparison of simulated conditions, or null), ``normalization`` (the
normaliser-sensitivity view, or null), ``runaway`` (runaway transcripts and the capped robust
view, or null), ``warnings`` (sanity warnings, possibly empty), ``failures``.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import pandas as pd

from harness.conditions import CONDITION_TAG
from harness.files import METRICS_SCHEMA
from harness.stats.by_slice import Aggregates, Dimension, Summary
from harness.stats.degradation import Degradation
from harness.stats.normaliser_sensitivity import NormalizerSensitivity
from harness.stats.rate_model import ModelResult
from harness.stats.robust import RobustView

SCHEMA = METRICS_SCHEMA
FAILURE_EXAMPLES = 20


def build_metrics(
    aggregates: Aggregates,
    table: pd.DataFrame,
    provenance: dict[str, Any],
    model: ModelResult | None = None,
    conditions: Degradation | None = None,
    normalization: NormalizerSensitivity | None = None,
    runaway: RobustView | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    failed = table[table["status"] != "ok"]
    headline = aggregates.headline
    simulated = bool(provenance.get("config", {}).get("conditions"))
    blocks = {name: _block(block, simulated) for name, block in aggregates.blocks.items()}
    return json_safe(
        {
            "schema": SCHEMA,
            "caveats": (provenance.get("dataset_card") or {}).get("caveats", []),
            "provenance": provenance,
            "aggregate": headline.aggregate,
            "method": headline.method,
            "stats": asdict(headline.options),
            **blocks[headline.aggregate],
            "aggregates": blocks,
            "aggregation": {
                "headline": headline.aggregate,
                "speaker_wer_threshold": aggregates.speaker_wer_threshold,
                "empty_references": aggregates.empty_references,
                "sensitivity": [asdict(s) for s in aggregates.sensitivity],
            },
            "model": asdict(model) if model else None,
            "conditions": asdict(conditions) if conditions else None,
            "normalization": asdict(normalization) if normalization else None,
            "runaway": asdict(runaway) if runaway else None,
            "warnings": warnings or [],
            "failures": {
                "count": len(failed),
                "rate": len(failed) / len(table) if len(table) else 0.0,
                "examples": [{"id": row.id, "error": row.error} for row in failed.head(FAILURE_EXAMPLES).itertuples()],
            },
        }
    )


def _block(summary: Summary, simulated: bool) -> dict[str, Any]:
    return {
        "overall": asdict(summary.overall),
        "dimensions": [{"name": d.name, "evidence": evidence(d, simulated), **asdict(d)} for d in summary.dimensions],
    }


def evidence(dimension: Dimension, simulated: bool) -> str:
    """Tags come from recordings (the manifest); in a run with simulated conditions, ``condition``
    is the harness's own. Without conditions a manifest tag may be called ``condition`` too."""
    uses = simulated and CONDITION_TAG in dimension.by
    if uses and len(dimension.by) > 1:
        return "recorded × simulated"
    return "simulated" if uses else "recorded"


def json_safe(value: Any) -> Any:
    """JSON has no NaN/inf: undefined numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
