"""The run's results, typed: :class:`RunResult`, and ``metrics.json``, its versioned form on disk.

:func:`build_result` gathers the statistics' dataclasses into a :class:`RunResult`; the renderers
(``report/``) read it. :meth:`RunResult.to_dict` is ``metrics.json``'s content and
:meth:`RunResult.from_dict` reads a saved one back into the same dataclasses, so a report of a
saved run (``asrfair report``) is rendered from what a fresh run renders from.

Schema ``asrfair.metrics/6`` (documented field by field in docs/metrics.md):
``schema``, ``caveats`` (the dataset card's: synthetic speech, licence, ...), ``provenance`` (what
produced the numbers), ``aggregate`` (the headline: ``pooled``
unless chosen otherwise), ``method``, ``stats`` (thresholds, bootstrap and test settings),
``overall`` and ``dimensions`` (the headline aggregate's block; each dimension with ``evidence``,
``slices``, ``disparity`` and ``test``), ``aggregates`` (the same block under each of ``pooled``,
``speaker-mean`` and ``utterance-mean``), ``aggregation`` (threshold, sensitivity flags), ``model``,
``conditions`` (the paired comparison of simulated conditions, or null), ``normalization`` (the
normaliser-sensitivity view, or null), ``runaway`` (runaway transcripts and the capped robust
view, or null), ``warnings`` (sanity warnings, possibly empty), ``failures``, ``throughput``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from harness.conditions import CONDITION_TAG
from harness.files import METRICS_SCHEMA
from harness.stats.options import StatsOptions
from harness.stats.records import (
    Aggregates,
    Degradation,
    Dimension,
    ModelResult,
    NormalizerSensitivity,
    RobustView,
    Sensitivity,
    SliceStats,
    Summary,
)
from harness.transcribe.throughput import Throughput

if TYPE_CHECKING:
    import cattrs
    import pandas as pd

SCHEMA = METRICS_SCHEMA
FAILURE_EXAMPLES = 20


@dataclass(frozen=True)
class FailedUtterance:
    id: str
    error: str | None


@dataclass(frozen=True)
class Failures:
    count: int
    rate: float  # failed / all utterances; 0.0 for an empty table
    examples: list[FailedUtterance]  # the first FAILURE_EXAMPLES


@dataclass(frozen=True)
class RunResult:
    """Everything a run's reports say: the statistics' own dataclasses, the provenance mapping
    (what produced the numbers) and the run's failures, warnings and throughput."""

    provenance: dict[str, Any]
    aggregates: Aggregates
    failures: Failures
    model: ModelResult | None = None
    conditions: Degradation | None = None
    normalization: NormalizerSensitivity | None = None
    runaway: RobustView | None = None
    warnings: list[str] = field(default_factory=list)
    throughput: Throughput | None = None  # a run's own measurement: None until it is taken, or without transcripts

    @property
    def headline(self) -> Summary:
        return self.aggregates.headline

    @property
    def overall(self) -> SliceStats:
        return self.headline.overall

    @property
    def dimensions(self) -> list[Dimension]:
        return self.headline.dimensions

    @property
    def options(self) -> StatsOptions:
        return self.headline.options

    @property
    def caveats(self) -> list[str]:
        return (self.provenance.get("dataset_card") or {}).get("caveats", [])

    @property
    def simulated(self) -> bool:
        """The run heard its utterances under simulated conditions (the config's ``conditions:``)."""
        return bool(self.provenance.get("config", {}).get("conditions"))

    def evidence(self, dimension: Dimension) -> str:
        return evidence(dimension, self.simulated)

    def to_dict(self) -> dict[str, Any]:
        """``metrics.json``'s content: JSON types only, undefined numbers as null."""
        aggregates, headline = self.aggregates, self.headline
        blocks = {name: _block(block, self.simulated) for name, block in aggregates.blocks.items()}
        return json_safe(
            {
                "schema": SCHEMA,
                "caveats": self.caveats,
                "provenance": self.provenance,
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
                "model": asdict(self.model) if self.model else None,
                "conditions": asdict(self.conditions) if self.conditions else None,
                "normalization": asdict(self.normalization) if self.normalization else None,
                "runaway": asdict(self.runaway) if self.runaway else None,
                "warnings": self.warnings,
                "failures": asdict(self.failures),
                "throughput": asdict(self.throughput) if self.throughput else None,
            }
        )

    @classmethod
    def from_dict(cls, metrics: dict[str, Any]) -> RunResult:
        """A saved ``metrics.json`` (the current schema: check it first with
        :func:`harness.files.check_metrics_schema`) as the dataclasses it was written from; a null
        where the statistic's type has a plain float reads as NaN, as it was before it was written."""
        read = _converter().structure
        options = read(metrics["stats"], StatsOptions)
        aggregation = metrics["aggregation"]
        blocks = {
            name: Summary(
                read(block["overall"], SliceStats),
                read(block["dimensions"], list[Dimension]),
                options,
                metrics["method"],
                name,
            )
            for name, block in metrics["aggregates"].items()
        }
        aggregates = Aggregates(
            aggregation["headline"],
            blocks,
            read(aggregation["sensitivity"], list[Sensitivity]),
            aggregation["speaker_wer_threshold"],
            aggregation["empty_references"],
        )
        return cls(
            provenance=metrics["provenance"],
            aggregates=aggregates,
            failures=read(metrics["failures"], Failures),
            model=read(metrics["model"], ModelResult | None),
            conditions=read(metrics["conditions"], Degradation | None),
            normalization=read(metrics["normalization"], NormalizerSensitivity | None),
            runaway=read(metrics["runaway"], RobustView | None),
            warnings=list(metrics["warnings"]),
            throughput=read(metrics.get("throughput"), Throughput | None),
        )


def _keep(value: Any, _type: Any) -> Any:
    return value  # JSON's own number: an int stays an int, so the file reads back byte for byte


def _float(value: Any, _type: Any) -> float:
    return math.nan if value is None else value  # written as null by json_safe


@cache
def _converter() -> cattrs.Converter:
    import cattrs  # only a saved run's reader needs it

    # The file is the harness's own and schema-checked: plain errors suffice, and the reader is
    # built in about half the time (the warm rerun's summary is read back through it).
    converter = cattrs.Converter(detailed_validation=False)
    for kind in (int, str, bool):
        converter.register_structure_hook(kind, _keep)
    converter.register_structure_hook(float, _float)
    return converter


def build_result(
    aggregates: Aggregates,
    table: pd.DataFrame,
    provenance: dict[str, Any],
    model: ModelResult | None = None,
    conditions: Degradation | None = None,
    normalization: NormalizerSensitivity | None = None,
    runaway: RobustView | None = None,
    warnings: list[str] | None = None,
) -> RunResult:
    failed = table[table["status"] != "ok"]
    failures = Failures(
        len(failed),
        len(failed) / len(table) if len(table) else 0.0,
        [FailedUtterance(row.id, row.error) for row in failed.head(FAILURE_EXAMPLES).itertuples()],
    )
    return RunResult(provenance, aggregates, failures, model, conditions, normalization, runaway, warnings or [])


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
