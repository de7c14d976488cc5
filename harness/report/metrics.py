"""``metrics.json``: the versioned, machine-readable result of a run.

Schema ``asrfair.metrics/3`` (documented field by field in docs/metrics.md):
``schema``, ``provenance`` (what produced the numbers), ``aggregate`` (``pooled``), ``method``,
``stats`` (thresholds, bootstrap and test settings), ``overall`` (one slice record),
``dimensions`` (each with ``evidence``, ``slices``, ``disparity`` and ``test``), ``model``,
``conditions`` (the paired comparison of simulated conditions, or null), ``failures``.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import pandas as pd

from harness.conditions import CONDITION_TAG
from harness.degradation import Degradation
from harness.model import ModelResult
from harness.stats import Dimension, Summary

SCHEMA = "asrfair.metrics/3"
FAILURE_EXAMPLES = 20


def build_metrics(
    summary: Summary,
    table: pd.DataFrame,
    provenance: dict[str, Any],
    model: ModelResult | None = None,
    conditions: Degradation | None = None,
) -> dict[str, Any]:
    failed = table[table["status"] != "ok"]
    return _finite(
        {
            "schema": SCHEMA,
            "provenance": provenance,
            "aggregate": summary.aggregate,
            "method": summary.method,
            "stats": asdict(summary.options),
            "overall": asdict(summary.overall),
            "dimensions": [{"name": d.name, "evidence": evidence(d), **asdict(d)} for d in summary.dimensions],
            "model": asdict(model) if model else None,
            "conditions": asdict(conditions) if conditions else None,
            "failures": {
                "count": len(failed),
                "rate": len(failed) / len(table) if len(table) else 0.0,
                "examples": [{"id": row.id, "error": row.error} for row in failed.head(FAILURE_EXAMPLES).itertuples()],
            },
        }
    )


def evidence(dimension: Dimension) -> str:
    """Tags come from recordings (the manifest); ``condition`` is simulated by the harness."""
    simulated = CONDITION_TAG in dimension.by
    if simulated and len(dimension.by) > 1:
        return "recorded × simulated"
    return "simulated" if simulated else "recorded"


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: undefined numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
