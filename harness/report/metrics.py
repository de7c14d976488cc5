"""``metrics.json``: the versioned, machine-readable result of a run.

Schema ``asrfair.metrics/2`` (documented field by field in docs/metrics.md):
``schema``, ``provenance`` (what produced the numbers), ``aggregate`` (``pooled``), ``method``,
``stats`` (thresholds, bootstrap and test settings), ``overall`` (one slice record),
``dimensions`` (each with ``slices``, ``disparity`` and ``test``), ``model``, ``failures``.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import pandas as pd

from harness.model import ModelResult
from harness.stats import Summary

SCHEMA = "asrfair.metrics/2"
FAILURE_EXAMPLES = 20


def build_metrics(
    summary: Summary, table: pd.DataFrame, provenance: dict[str, Any], model: ModelResult | None = None
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
            "dimensions": [asdict(d) for d in summary.dimensions],
            "model": asdict(model) if model else None,
            "failures": {
                "count": len(failed),
                "rate": len(failed) / len(table) if len(table) else 0.0,
                "examples": [{"id": row.id, "error": row.error} for row in failed.head(FAILURE_EXAMPLES).itertuples()],
            },
        }
    )


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: undefined numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
