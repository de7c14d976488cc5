"""RunResult: metrics.json is its ``to_dict()``, and ``from_dict`` reads a saved one back into the
statistics' own dataclasses, byte for byte."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from cli import invoke
from conftest import REPO, accent_records, write_config

from harness.results import FailedUtterance, RunResult
from harness.stats.records import (
    Aggregates,
    ConditionCell,
    Degradation,
    Dimension,
    Disparity,
    Effect,
    ModelResult,
    NormalizerSensitivity,
    Rewrite,
    RobustView,
    RunawayCount,
    SliceStats,
    Summary,
)
from harness.transcribe.throughput import Throughput

LOOPED = "welsh-1-2"


def _run(tmp_path, make_manifest, name: str, **extra) -> dict:
    backend = {
        "name": "stub",
        "default_rate": 0.05,
        "error_rates": {"accent": {"scottish": 0.2}},
        "error_rules": [{"when": {"condition": "phone", "accent": "welsh"}, "rate": 0.3}],
        "failure_rates": {"accent": {"general": 0.1}},
        "loops": [{"ids": [LOOPED], "repeats": 40}],
    }
    config = write_config(tmp_path / f"{name}.yaml", make_manifest(accent_records(4, 5)), backend, **extra)
    ran = invoke("run", str(config), "--output", str(tmp_path / name))
    assert ran.returncode == 0, ran.stderr
    (metrics,) = (tmp_path / name).glob("*/metrics.json")
    return json.loads(metrics.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, dict]:
    """Two stub runs' metrics.json: one with every optional block, one with none of them."""
    from conftest import write_tone

    tmp_path = tmp_path_factory.mktemp("results")
    tone = write_tone(tmp_path / "tone.wav")

    def make_manifest(records):
        path = tmp_path / "manifest.jsonl"
        path.write_text("".join(json.dumps({"audio": tone.name, **r}) + "\n" for r in records), encoding="utf-8")
        return path

    full = _run(
        tmp_path,
        make_manifest,
        "full",
        conditions=[{"name": "clean"}, {"name": "phone", "transforms": [{"type": "telephone"}]}],
        stats={"min_speakers": 1, "min_words": 1, "normalizers": ["basic"], "aggregate": "speaker-mean"},
        runaway={"max_words_per_second": 1000.0},
        max_failure_rate=1.0,
    )
    bare = _run(
        tmp_path,
        make_manifest,
        "bare",
        stats={"min_speakers": 1, "min_words": 1, "model": "none"},
        runaway={"max_words_per_second": 1000.0},
        max_failure_rate=1.0,
    )
    return {"full": full, "bare": bare}


@pytest.mark.parametrize("name", ["full", "bare"])
def test_a_saved_metrics_json_reads_back_byte_for_byte(saved, name):
    metrics = saved[name]
    result = RunResult.from_dict(metrics)
    assert result.to_dict() == metrics
    assert json.dumps(result.to_dict(), indent=2, ensure_ascii=False) == json.dumps(
        metrics, indent=2, ensure_ascii=False
    )
    assert RunResult.from_dict(result.to_dict()) == result


def test_the_reader_rebuilds_the_statistics_dataclasses(saved):
    metrics = saved["full"]
    assert metrics["model"] and metrics["conditions"] and metrics["normalization"] and metrics["runaway"]
    assert metrics["failures"]["count"] > 0
    result = RunResult.from_dict(metrics)
    assert isinstance(result.aggregates, Aggregates)
    assert result.headline is result.aggregates.blocks["speaker-mean"] and isinstance(result.headline, Summary)
    assert set(result.aggregates.blocks) == {"pooled", "speaker-mean", "utterance-mean"}
    assert isinstance(result.overall, SliceStats)
    accent = next(d for d in result.dimensions if d.name == "accent")
    assert isinstance(accent, Dimension) and isinstance(accent.disparity, Disparity)
    assert all(isinstance(s, SliceStats) for s in accent.slices)
    assert result.evidence(accent) == "recorded"
    assert isinstance(result.model, ModelResult) and all(isinstance(e, Effect) for e in result.model.effects)
    assert isinstance(result.conditions, Degradation)
    assert isinstance(result.conditions.dimensions[0].slices[0].cells[0], ConditionCell)
    assert isinstance(result.normalization, NormalizerSensitivity)
    assert all(isinstance(r, Rewrite) for rewrites in result.normalization.rewrites for r in rewrites)
    assert isinstance(result.runaway, RobustView) and isinstance(result.runaway.overall, RunawayCount)
    assert result.runaway.overall.runaway >= 1
    assert isinstance(result.failures.examples[0], FailedUtterance)
    assert isinstance(result.throughput, Throughput)
    assert result.caveats == metrics["caveats"] and result.options.aggregate == "speaker-mean"


def test_null_reads_back_as_none_or_nan_as_the_field_is_typed(saved):
    """json_safe writes NaN as null: a plain float field reads it as NaN again, an optional one as None."""
    metrics = json.loads(json.dumps(saved["bare"]))
    for dimension in (metrics["dimensions"][0], metrics["aggregates"]["pooled"]["dimensions"][0]):  # the headline's
        if dimension["test"]:
            dimension["test"]["statistic"] = None
        dimension["disparity"]["gap"] = None
    read = RunResult.from_dict(metrics).aggregates.blocks["pooled"].dimensions[0]
    if read.test is not None:
        assert math.isnan(read.test.statistic)
    assert read.disparity.gap is None
    assert RunResult.from_dict(metrics).to_dict() == metrics


# In a fresh interpreter: what is loaded after importing the results and the terminal renderer, and
# after reading a saved run back and printing its summary (as a warm rerun does, issue 28).
_READ_AND_PRINT = """
import io, json, sys
from rich.console import Console
import harness.results, harness.report.terminal
heavy = set(sys.argv[2].split(","))
print(sorted(heavy & sys.modules.keys()))
result = harness.results.RunResult.from_dict(json.load(open(sys.argv[1], encoding="utf-8")))
harness.report.terminal.print_summary(result, Console(file=io.StringIO(), width=160))
print(sorted(heavy & sys.modules.keys()))
"""


def test_reading_and_printing_a_saved_run_loads_no_statistics_library(saved, tmp_path):
    """The records are apart from the statistics that compute them (harness/stats/records.py): no
    scipy, statsmodels or pandas for a saved run's report, and cattrs only once one is read."""
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(saved["full"]), encoding="utf-8")
    heavy = "scipy,statsmodels,pandas,cattrs"
    ran = subprocess.run(
        [sys.executable, "-c", _READ_AND_PRINT, str(path), heavy], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["[]", "['cattrs']"]
