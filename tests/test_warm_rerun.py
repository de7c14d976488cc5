"""A rerun that changes nothing reuses the stored scoring (harness.reuse), byte for byte; any
change to what determines the numbers scores afresh. Stub backend, real files."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from cli import asrfair
from conftest import write_config

from harness import reuse
from harness.config import load_config
from harness.decide.integrity import check_sealed
from harness.errors import InputError
from harness.pipeline import prepare, run

SCORED = ("metrics.json", "provenance.json", "report.md", "report.html", "utterances.parquet")
REUSED = "scores reused"


@pytest.fixture
def manifest(make_manifest):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    records = [
        {
            "id": f"{accent}-{speaker}-{n}",
            "text": " ".join(words[(n + k) % 6] for k in range(6)),
            "speaker": f"{accent}{speaker}",
            "accent": accent,
        }
        for accent in ("scottish", "welsh", "general")
        for speaker in range(4)
        for n in range(5)
    ]
    return make_manifest(records)


def config_at(tmp_path: Path, manifest: Path, **extra: object):
    backend = {"name": "stub", "error_rates": {"accent": {"scottish": 0.2}}}
    return load_config(write_config(tmp_path / "run.yaml", manifest, backend, **extra))


def scored_run(config, caplog) -> tuple[Path, dict, bool]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="harness"):
        outcome = run(prepare(config))
    return outcome.paths.root, outcome.metrics, any(REUSED in r.getMessage() for r in caplog.records)


def same_but_created(first: Path, second: Path, *, own_throughput: bool = False) -> None:
    """Every scored file of ``second`` is ``first``'s with only the creation time changed. With
    ``own_throughput`` (a run that transcribed against one served from the cache), metrics.json's
    ``throughput`` (each run's own RTFx) differs too."""
    old = json.loads((first / "metrics.json").read_text())["provenance"]["created_utc"].encode()
    new = json.loads((second / "metrics.json").read_text())["provenance"]["created_utc"].encode()
    datetime.fromisoformat(new.decode())  # a real time, never the placeholder
    for name in SCORED:
        before, after = (first / name).read_bytes().replace(old, new), (second / name).read_bytes()
        if own_throughput and name == "metrics.json":
            before, after = (json.loads(b) for b in (before, after))
            assert before.pop("throughput")["transcripts"] > after.pop("throughput")["transcripts"] == 0
        assert before == after, name


def test_rerun_reuses_the_scoring_and_matches_a_fresh_one(tmp_path, manifest, caplog):
    config = config_at(tmp_path, manifest)
    cold, cold_metrics, reused = scored_run(config, caplog)
    assert not reused
    warm, warm_metrics, reused = scored_run(config, caplog)
    assert reused
    same_but_created(cold, warm, own_throughput=True)
    check_sealed(warm)  # the stamped files are the sealed ones
    assert warm_metrics["overall"] == cold_metrics["overall"]
    for run_dir in (cold, warm):  # scored elsewhere, yet the placeholder never reaches a run directory
        assert not [p.name for p in run_dir.iterdir() if b"asrfair-created" in p.read_bytes()]
    links = re.findall(r'src="([^"#]+)', (cold / "report.html").read_text())
    assert links and all((cold / link).resolve() == manifest.parent / "tone.wav" for link in links)
    # Scored afresh, without the store: the same bytes again (the stored scoring is a fresh one's).
    shutil.rmtree(tmp_path / "runs" / ".cache" / "scores")
    fresh, _, reused = scored_run(config, caplog)
    assert not reused
    same_but_created(warm, fresh)


@pytest.mark.parametrize(
    "change",
    [
        {"stats": {"min_speakers": 1, "min_words": 1, "confidence": 0.9}},
        {"normalizer": "basic"},
        {"slices": [{"by": "accent", "reference": "general"}]},
        {"runaway": {"max_words_per_second": 3.0}},
    ],
)
def test_a_change_that_can_move_a_number_scores_afresh(tmp_path, manifest, caplog, change):
    scored_run(config_at(tmp_path, manifest), caplog)
    changed = config_at(tmp_path, manifest, **change)
    assert not scored_run(changed, caplog)[2]
    assert scored_run(changed, caplog)[2]  # and that scoring is reused in turn


def test_changed_transcripts_score_afresh(tmp_path, manifest, caplog):
    scored_run(config_at(tmp_path, manifest), caplog)
    backend = {"name": "stub", "error_rates": {"accent": {"welsh": 0.3}}}
    config = load_config(write_config(tmp_path / "run.yaml", manifest, backend))
    _, metrics, reused = scored_run(config, caplog)
    assert not reused
    accent = next(d for d in metrics["dimensions"] if d["name"] == "accent")
    assert accent["disparity"]["worst"] == "welsh"


def test_an_unreadable_stored_scoring_is_scored_again(tmp_path, manifest, caplog):
    config = config_at(tmp_path, manifest)
    cold, _, _ = scored_run(config, caplog)
    (entry,) = (tmp_path / "runs" / ".cache" / "scores").iterdir()
    (entry / "report.md").write_text("edited\n")  # damaged: its checksum no longer matches
    again, _, reused = scored_run(config, caplog)
    assert not reused
    same_but_created(cold, again, own_throughput=True)
    (entry / "metrics.json").unlink()  # the entry just written again; now one file missing
    third, _, reused = scored_run(config, caplog)
    assert not reused
    same_but_created(cold, third, own_throughput=True)


def test_only_the_newest_scorings_are_kept(tmp_path, manifest, caplog, monkeypatch):
    monkeypatch.setattr(reuse, "KEEP", 2)
    for confidence in (0.8, 0.9, 0.95):
        scored_run(config_at(tmp_path, manifest, stats={"min_speakers": 1, "confidence": confidence}), caplog)
    assert len([p for p in (tmp_path / "runs" / ".cache" / "scores").iterdir() if p.is_dir()]) == 2


def test_output_elsewhere_says_the_cache_is_new_and_how_to_reuse_the_old(tmp_path, manifest):
    """``-o DIR`` starts a new default cache in DIR: said before the work, with the --cache that
    reuses the config's own; every run names the cache it used."""
    config = tmp_path / "run.yaml"
    write_config(config, manifest, {"name": "stub"})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "HF_HUB_OFFLINE": "1"}

    def asrfair_run(*extra: str) -> str:
        done = asrfair("run", str(config), *extra, env=env)
        assert done.returncode == 0, done.stderr
        return done.stderr

    old = tmp_path / "runs" / ".cache" / "transcripts.sqlite"
    first = asrfair_run()
    assert "(60 transcribed, 0 from cache)" in first and f"transcript cache: {old}" in first
    assert "is new" not in first
    moved = asrfair_run("-o", str(tmp_path / "elsewhere"))
    new = tmp_path / "elsewhere" / ".cache" / "transcripts.sqlite"
    hint = f"transcript cache {new} is new"
    assert hint in moved and f"add --cache {old} to reuse them" in moved
    assert moved.index(hint) < moved.index("transcribing:")  # before any work, in time to stop
    assert "(60 transcribed, 0 from cache)" in moved
    reused = asrfair_run("-o", str(tmp_path / "third"), "--cache", str(old))
    assert "(0 transcribed, 60 from cache)" in reused and "is new" not in reused


def test_a_warm_rerun_needs_neither_pandas_nor_pyarrow(tmp_path, manifest):
    """The rerun path (slice checks reused, transcripts.parquet and the history written through
    DuckDB) imports no pandas, pyarrow or scipy: most of what a warm rerun's time was."""
    config = tmp_path / "run.yaml"
    write_config(config, manifest, {"name": "stub", "error_rates": {"accent": {"scottish": 0.2}}})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "HF_HUB_OFFLINE": "1"}
    assert asrfair("run", str(config), env=env).returncode == 0
    probe = (
        "import sys\n"
        "from harness.cli import main\n"
        f"sys.argv = ['asrfair', 'run', {str(config)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('LOADED', sorted(m for m in ('pandas', 'pyarrow', 'scipy', 'statsmodels') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout
    assert "(0 transcribed, 60 from cache)" in done.stderr
    import pandas as pd

    runs = sorted(p for p in (tmp_path / "runs").iterdir() if p.name.startswith("test-"))
    cold, warm = (pd.read_parquet(r / "transcripts.parquet") for r in runs)
    assert list(warm.columns) == ["id", "backend", "backend_id", "status", "text", "error", "latency_s", "cached"]
    assert not cold["cached"].any() and warm["cached"].all()
    assert warm.drop(columns="cached").equals(cold.drop(columns="cached"))
    assert warm["error"].isna().all() and warm["latency_s"].notna().all()


def test_slice_checks_are_reused_only_for_the_same_slices_and_tags(tmp_path, manifest, caplog):
    """A rerun takes the slice checks' outcome from slice-checks.json (the dimension left out is
    still said); changed slices are checked again, so their error is never skipped; a damaged
    record is checked afresh."""
    slices = [{"by": "accent"}, {"by": ["accent", "language"]}]  # language has one value: a duplicate
    config = config_at(tmp_path, manifest, slices=slices)
    checks = tmp_path / "runs" / ".cache" / "slice-checks.json"
    left_out = "slice dimension 'accent × language' left out: the same groups of utterances as 'accent'"
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="harness"):
            prepared = prepare(config)
        assert [s.label for s in prepared.slices] == ["accent"]
        assert any(left_out in r.getMessage() for r in caplog.records)
        assert checks.is_file()
    (entry,) = json.loads(checks.read_text()).values()
    assert entry == [[1, f"{left_out} (language has one value)"]]
    typo = config_at(tmp_path, manifest, slices=[{"by": "accent", "where": {"accent": ["scotish"]}}])
    for _ in range(2):  # a failed check is never kept
        with pytest.raises(InputError, match="did you mean 'scottish'"):
            prepare(typo)
    for damaged in ("not json", json.dumps({k: [[7, "out of range"]] for k in json.loads(checks.read_text())})):
        checks.write_text(damaged)
        assert [s.label for s in prepare(config).slices] == ["accent"]
