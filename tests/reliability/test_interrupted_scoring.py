"""A directory whose scoring was interrupted is never read as a result, and says how to finish it."""

from __future__ import annotations

import json
import re

import pytest
from conftest import write_config

from harness.config import load_config
from harness.decide.gate import load_side
from harness.errors import InputError
from harness.pipeline import prepare, report, rescore, run


@pytest.fixture
def finished(tmp_path, make_manifest):
    records = [
        {"id": f"u{i}", "text": "one two three", "speaker": f"s{i % 3}", "accent": "ab"[i % 2]} for i in range(12)
    ]
    manifest = make_manifest(records)
    config = write_config(
        tmp_path / "run.yaml", manifest, {"name": "stub", "default_rate": 0.2}, stats={"bootstrap": 50}
    )
    return run(prepare(load_config(config)))


def test_score_completes_a_run_stopped_before_metrics_json(finished):
    root = finished.paths.root
    (root / "metrics.json").unlink()
    with pytest.raises(
        InputError, match=re.escape(f"no metrics.json: scoring was interrupted; 'asrfair score {root}'")
    ):
        report(root)
    with pytest.raises(InputError, match="did not finish scoring"):
        load_side(root, "candidate")
    again = rescore(root)
    assert again["overall"] == finished.metrics["overall"]
    assert again["provenance"]["manifest"] == finished.metrics["provenance"]["manifest"]
    assert json.loads((root / "metrics.json").read_text())["overall"] == finished.metrics["overall"]


def test_without_any_provenance_the_hint_is_to_rerun(finished):
    root = finished.paths.root
    (root / "metrics.json").unlink()
    (root / "provenance.json").unlink()
    with pytest.raises(InputError, match=re.escape("rerun `asrfair run CONFIG` with the config that made it")):
        report(root)
    with pytest.raises(InputError, match=re.escape("neither metrics.json nor provenance.json")):
        rescore(root)


def test_a_rescore_that_fails_midway_leaves_no_metrics_json(finished):
    root = finished.paths.root
    (root / "report.html").unlink()
    (root / "report.html").mkdir()  # the report cannot be written: the rescore stops there
    with pytest.raises(InputError, match=re.escape("report.html: cannot write")):
        rescore(root, normalizers=["basic"])
    assert not (root / "metrics.json").exists()  # not half old scoring, half new
    with pytest.raises(InputError, match="did not finish scoring"):
        load_side(root, "candidate")
    (root / "report.html").rmdir()
    assert rescore(root, normalizers=["basic"])["provenance"]["normalizer"].startswith("basic@")


def test_a_baseline_pair_from_two_settings_is_refused(tmp_path, finished):
    from harness.decide.gate import save_baseline

    baseline = save_baseline(finished.paths.root, tmp_path / "baselines" / "nightly.json")
    assert load_side(baseline, "baseline").metrics["overall"] == finished.metrics["overall"]
    table = baseline.with_name("nightly.utterances.parquet")
    rescore(finished.paths.root, normalizers=["basic"])  # a different table, as a later run would have
    table.write_bytes((finished.paths.root / "utterances.parquet").read_bytes())  # ... killed before the JSON
    with pytest.raises(InputError, match=re.escape("not the table nightly.json was saved with")):
        load_side(baseline, "baseline")
