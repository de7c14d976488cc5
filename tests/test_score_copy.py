"""``asrfair score`` writes a new run directory: the scored run (every file, byte for byte) and its
history row stay as they were, unless ``--in-place`` is asked for."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cli import asrfair, assert_clean_error
from conftest import write_config

from harness.config import load_config
from harness.decide.history import connect
from harness.pipeline import prepare, run

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


def digests(root: Path) -> dict[str, str]:
    files = (p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def history_rows(db: Path, run_id: str) -> dict[str, list[tuple]]:
    with connect(db, read_only=True) as con:
        return {
            table: sorted(map(repr, con.execute(f"SELECT * FROM {table} WHERE run_id = ?", [run_id]).fetchall()))
            for table in ("runs", "slices", "disparity")
        }


@pytest.fixture
def scored(tmp_path, make_manifest) -> tuple[Path, Path]:
    records = [
        {"id": f"{a}-{s}-{n}", "text": "Gonna " + " ".join(WORDS[(n + k) % 10] for k in range(6)), "speaker": f"{a}{s}"}
        | {"accent": a}
        for a in ("north", "south")
        for s in range(3)
        for n in range(4)
    ]
    config = write_config(tmp_path / "run.yaml", make_manifest(records), {"name": "stub", "default_rate": 0.1})
    outcome = run(prepare(load_config(config)))
    return outcome.paths.root, tmp_path / "runs" / "history.duckdb"


def test_score_leaves_the_scored_run_and_its_history_row_byte_identical(scored):
    run_dir, db = scored
    files, rows = digests(run_dir), history_rows(db, run_dir.name)
    assert rows["runs"] and rows["slices"]

    result = asrfair("score", str(run_dir), "--normalizer", "basic", "--aggregate", "speaker-mean")
    assert result.returncode == 0, result.stderr
    assert digests(run_dir) == files and history_rows(db, run_dir.name) == rows
    (new,) = (p for p in run_dir.parent.iterdir() if p.name.startswith(f"{run_dir.name}-rescored-"))
    assert f"run directory: {new}" in result.stderr and "unchanged" in result.stderr
    metrics = json.loads((new / "metrics.json").read_text())
    assert metrics["provenance"]["normalizer"].startswith("basic@")
    assert json.loads((run_dir / "metrics.json").read_text())["provenance"]["normalizer"].startswith("whisper")
    assert history_rows(db, new.name)["runs"]  # the new run is a run of its own in the history
    assert {"report.md", "report.html", "checksums.json", "utterances.parquet"} <= {p.name for p in new.iterdir()}
    assert asrfair("report", str(new)).returncode == 0  # sealed and complete


def test_score_output_and_in_place(scored, tmp_path):
    run_dir, db = scored
    files = digests(run_dir)
    target = tmp_path / "elsewhere" / "basic"
    result = asrfair("score", str(run_dir), "--normalizer", "basic", "--output", str(target))
    assert result.returncode == 0, result.stderr
    assert digests(run_dir) == files
    assert json.loads((target / "metrics.json").read_text())["provenance"]["normalizer"].startswith("basic@")
    assert_clean_error(asrfair("score", str(run_dir), "-o", str(target)), 2, "not an empty folder")
    assert_clean_error(asrfair("score", str(run_dir), "-o", str(target), "--in-place"), 2, "choose one")

    before = history_rows(db, run_dir.name)
    in_place = asrfair("score", str(run_dir), "--normalizer", "basic", "--in-place")
    assert in_place.returncode == 0, in_place.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["provenance"]["normalizer"].startswith("basic@")
    assert digests(run_dir) != files and history_rows(db, run_dir.name) != before
