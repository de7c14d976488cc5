"""Normalisation as a fairness choice: the sensitivity view, re-scoring without re-transcribing,
provenance in every result, and comparisons refused across normalisers."""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib.metadata import version

import duckdb
import jiwer
import pandas as pd
import pytest
import yaml
from cli import asrfair, assert_clean_error
from conftest import write_config

import harness
from harness.config import GateConfig, load_config
from harness.decide.gate import compare_sides, load_side, run_gate
from harness.errors import InputError
from harness.pipeline import prepare, rescore, run
from harness.scoring.normalisers import get_normalizer

SENTENCES = (
    "i am going to see the doctor today",
    "we want to go to the shop now",
    "they are going to wait for the bus",
    "the colour of the sky is blue",
    "you are going to like this one",
)
ACCENTS = ("southern", "northern", "western")
# A model that writes southern speakers' forms as spoken: the planted case of the issue.
DIALECT_SPELLING = [{"when": {"accent": "southern"}, "words": {"going to": "gonna", "want to": "wanna"}}]


@pytest.fixture
def manifest(make_manifest):
    records = [
        {"id": f"{a}-{s}-{i}", "text": text, "speaker": f"{a}{s}", "accent": a}
        for a in ACCENTS
        for s in range(6)
        for i, text in enumerate(SENTENCES * 2)
    ]
    # A clip of fillers only: whisper-english empties the reference (N = 0), dialect-preserving keeps it.
    records.append({"id": "fillers", "text": "uh um", "speaker": "northern0", "accent": "northern"})
    return make_manifest(records)


def planted_config(tmp_path, manifest, **extra):
    backend = {"name": "stub", "default_rate": 0.03, "rewrites": DIALECT_SPELLING}
    stats = {"min_speakers": 3, "min_words": 50, "bootstrap": 200, "permutations": 200, **extra.pop("stats", {})}
    return load_config(write_config(tmp_path / "run.yaml", manifest, backend, stats=stats, **extra))


def accent_view(metrics):
    return next(d for d in metrics["normalization"]["dimensions"] if d["name"] == "accent")


def test_the_sensitivity_view_flags_the_slice_a_normaliser_forgives(tmp_path, manifest):
    config = planted_config(tmp_path, manifest, stats={"normalizers": ["dialect-preserving"]})
    metrics = run(prepare(config)).metrics
    view = metrics["normalization"]
    assert view["normalizers"] == ["whisper-english@1", "dialect-preserving@1"]
    accent = accent_view(metrics)
    slices = {s["label"]: s for s in accent["slices"]}
    assert [label for label, s in slices.items() if s["flagged"]] == ["southern"]
    southern = slices["southern"]
    assert southern["excess"][1] > 0.1  # ~2 of every 7 words become errors under dialect-preserving only
    assert abs(slices["northern"]["excess"][1]) < 0.02 and abs(slices["western"]["excess"][1]) < 0.02
    assert southern["rank"][1] == 1 and accent["worst"][1] == "southern"
    top = southern["rewrites"][0][0]
    assert (top["side"], top["headline"], top["other"]) == ("hypothesis", "going to", "gonna")
    assert slices["western"]["rewrites"][0] == []  # alike on both sides there: nothing that moves WER
    assert any("southern" in flag for flag in view["flags"])
    # The headline is untouched by the comparison: whisper-english forgives the dialect spelling.
    headline = {s["label"]: s["wer"] for s in next(d for d in metrics["dimensions"] if d["name"] == "accent")["slices"]}
    assert headline["southern"] == pytest.approx(southern["wer"][0])
    assert abs(headline["southern"] - headline["western"]) < 0.03


def test_each_view_agrees_with_jiwer_on_its_own_normalised_text(tmp_path, manifest):
    config = planted_config(tmp_path, manifest, stats={"normalizers": ["dialect-preserving"]})
    outcome = run(prepare(config))
    table = pd.read_parquet(outcome.paths.utterances)
    dialect = get_normalizer("dialect-preserving")
    southern = table[table["accent"] == "southern"]
    expected = jiwer.wer([dialect(t) for t in southern["reference"]], [dialect(t) for t in southern["hypothesis"]])
    assert slice_wer(outcome.metrics, "southern", 1) == pytest.approx(expected, abs=1e-12)
    # Pooled over references that whisper-english empties: the fillers clip counts its insertions.
    northern = table[table["accent"] == "northern"]
    errors = (northern["errors"]).sum() / northern["ref_words"].sum()
    assert slice_wer(outcome.metrics, "northern", 0) == pytest.approx(errors)
    assert (northern.loc[northern["id"] == "fillers", "ref_words"] == 0).all()


def slice_wer(metrics, label, index):
    return next(s for s in accent_view(metrics)["slices"] if s["label"] == label)["wer"][index]


def test_rescoring_under_another_normaliser_changes_nothing_but_the_scores(tmp_path, manifest):
    outcome = run(prepare(planted_config(tmp_path, manifest)))
    root = outcome.paths.root
    before = {name: (root / name).read_bytes() for name in ("transcripts.parquet", "config.yaml")}
    table_before = pd.read_parquet(root / "utterances.parquet")
    cache = tmp_path / "runs" / ".cache" / "transcripts.sqlite"
    cache_bytes = cache.read_bytes()

    metrics = rescore(root, normalizers=["dialect-preserving"])

    assert {name: (root / name).read_bytes() for name in before} == before
    assert cache.read_bytes() == cache_bytes  # nothing transcribed
    table_after = pd.read_parquet(root / "utterances.parquet")
    raw = ["id", "speaker", "language", "accent", "status", "error", "reference", "hypothesis"]
    pd.testing.assert_frame_equal(table_before[raw], table_after[raw])
    assert not table_before["ref_norm"].equals(table_after["ref_norm"])
    assert metrics["provenance"]["normalizer"] == "dialect-preserving@1"
    assert metrics["overall"]["wer"] > outcome.metrics["overall"]["wer"]
    assert metrics["provenance"]["created_utc"] == outcome.metrics["provenance"]["created_utc"]
    assert json.loads((root / "provenance.json").read_text()) == metrics["provenance"]


def test_cli_score_with_two_normalisers_matches_the_configured_view(tmp_path, manifest):
    configured = run(prepare(planted_config(tmp_path, manifest, stats={"normalizers": ["dialect-preserving"]})))
    plain = run(prepare(planted_config(tmp_path, manifest)))
    result = asrfair(
        "score",
        str(plain.paths.root),
        "--normalizer",
        "whisper-english",
        "--normalizer",
        "dialect-preserving",
        "--json",
        "--in-place",
    )
    assert result.returncode == 0, result.stderr
    rescored = json.loads(result.stdout)
    assert rescored["normalization"] == configured.metrics["normalization"]
    report = (plain.paths.root / "report.md").read_text()
    assert "## Normaliser sensitivity" in report and "southern ⚑" in report and "“going to” → “gonna”" in report
    table = asrfair("score", str(plain.paths.root), "--normalizer", "whisper-english", "--normalizer", "basic")
    assert "Normaliser sensitivity" in table.stdout and "basic@1" in table.stdout
    bad = asrfair("score", str(plain.paths.root), "--normalizer", "basic", "--normalizer", "fancy")
    assert_clean_error(bad, 2, "--normalizer: unknown normalizer 'fancy'")


def test_a_yaml_normaliser_in_the_config_is_relative_to_it_and_recorded(tmp_path, manifest):
    (tmp_path / "norms").mkdir()
    (tmp_path / "norms" / "mine.yaml").write_text(
        "name: mine\nversion: 1\nsteps: [{preset: basic@1}, {substitute_words: {gonna: going to}}]\n"
    )
    config_path = write_config(
        tmp_path / "run.yaml",
        manifest,
        {"name": "stub", "rewrites": DIALECT_SPELLING},
        normalizer="norms/mine.yaml",
        stats={"min_speakers": 3, "min_words": 50, "bootstrap": 50, "permutations": 0},
    )
    metrics = run(prepare(load_config(config_path))).metrics
    definition = metrics["provenance"]["normalizer_definition"]
    assert metrics["provenance"]["normalizer"] == "mine@1"
    assert definition["source"] == str((tmp_path / "norms" / "mine.yaml").resolve())
    assert definition["definition"]["steps"][1] == {"substitute_words": {"gonna": "going to"}}
    assert len(definition["sha256"]) == 64
    wer = {s["label"]: s["wer"] for s in next(d for d in metrics["dimensions"] if d["name"] == "accent")["slices"]}
    assert wer["southern"] > 0 and wer["northern"] == 0  # gonna mapped, wanna not


def test_bad_normalisers_in_a_config_are_one_line_errors(tmp_path, manifest):
    bad = write_config(
        tmp_path / "bad.yaml",
        manifest,
        {"name": "stub"},
        stats={"normalizers": ["basic", "dialect-preservng"]},
    )
    assert_clean_error(
        asrfair("run", str(bad)), 2, f"{bad}: 'stats.normalizers[1]'", "did you mean 'dialect-preserving'?"
    )
    missing = write_config(tmp_path / "missing.yaml", manifest, {"name": "stub"}, normalizer="nope.yaml")
    assert_clean_error(asrfair("run", str(missing)), 2, f"{missing}: 'normalizer'", "nope.yaml not found")


def test_provenance_is_complete_in_metrics_run_dir_and_history(tmp_path, manifest):
    config = planted_config(tmp_path, manifest, stats={"normalizers": ["basic"]})
    outcome = run(prepare(config))
    prov = outcome.metrics["provenance"]
    assert prov["harness_version"] == harness.__version__
    assert prov["git_sha"] is None or len(prov["git_sha"].removesuffix("+dirty")) == 40
    assert prov["manifest"]["sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert prov["manifest"]["utterances"] == 181
    assert prov["config"]["stats"]["normalizers"] == ["basic"]
    assert prov["normalizer"] == "whisper-english@1"
    assert prov["normalizer_definition"]["library"] == f"whisper-normalizer {version('whisper-normalizer')}"
    assert [n["stamp"] for n in prov["normalizers_compared"]] == ["basic@1"]
    assert prov["scorer"] == {"name": "jiwer", "version": version("jiwer"), "alignment": "1"}
    backend = prov["backend"]
    assert backend["name"] == "stub" and len(backend["id"]) == 16
    assert backend["decoding"]["rewrites"] == DIALECT_SPELLING and backend["model_revision"] is None
    assert prov["counts"] == {
        "rows": 181,
        "conditions": 0,
        "scored": 181,
        "failed": 0,
        "dimensions": {"accent": {"kept": 181}},
    }
    assert json.loads((outcome.paths.root / "provenance.json").read_text()) == prov
    with duckdb.connect(str(tmp_path / "runs" / "history.duckdb"), read_only=True) as con:
        row = con.execute(
            "SELECT normalizer, normalizers_compared, jiwer_version, provenance FROM runs WHERE run_id = ?",
            [outcome.paths.root.name],
        ).fetchone()
    assert row[:3] == ("whisper-english@1", "basic@1", version("jiwer"))
    assert json.loads(row[3])["manifest"]["sha256"] == prov["manifest"]["sha256"]


def test_provenance_counts_rows_kept_by_filters(tmp_path, manifest):
    config = planted_config(
        tmp_path, manifest, slices=[{"by": "accent", "where": "accent != 'western'", "name": "not-western"}]
    )
    counts = run(prepare(config)).metrics["provenance"]["counts"]
    assert counts["dimensions"] == {"not-western": {"kept": 121}} and counts["rows"] == 181


def test_gate_and_compare_refuse_runs_scored_under_different_normalisers(tmp_path, manifest):
    first = run(prepare(planted_config(tmp_path, manifest))).paths.root
    second = tmp_path / "second"
    shutil.copytree(first, second)
    rescore(second, normalizers=["dialect-preserving"])
    with pytest.raises(InputError, match="whisper-english@1 in the baseline and dialect-preserving@1 in the candidate"):
        run_gate(load_side(first, "baseline"), load_side(second, "candidate"), GateConfig())
    forced = run_gate(load_side(first, "baseline"), load_side(second, "candidate"), GateConfig(), force=True)
    assert "compared anyway (--force)" in forced.warnings[0]

    gate = asrfair("gate", str(second), "--baseline", str(first))
    assert_clean_error(gate, 2, "scored under whisper-english@1", "--normalizer whisper-english@1", "--force")
    compare = asrfair("compare", str(first), str(second))
    assert_clean_error(compare, 2, "whisper-english@1 in the A and dialect-preserving@1 in the B")
    assert asrfair("compare", str(first), str(second), "--force").returncode == 0
    with pytest.raises(InputError):
        compare_sides(first, second)

    rescore(second, normalizers=["whisper-english@1"])  # the fix the message names
    assert run_gate(load_side(first, "baseline"), load_side(second, "candidate"), GateConfig()).passed


def test_two_definitions_of_one_yaml_normaliser_are_not_comparable(tmp_path, manifest):
    first = run(prepare(planted_config(tmp_path, manifest))).paths.root
    second = tmp_path / "second"
    shutil.copytree(first, second)
    for root, word in ((first, "a"), (second, "b")):
        path = tmp_path / f"mine-{word}.yaml"
        path.write_text(yaml.safe_dump({"name": "mine", "version": 1, "steps": [{"remove_specific_words": [word]}]}))
        rescore(root, normalizers=[str(path)])
    with pytest.raises(InputError, match="two different definitions of mine@1"):
        run_gate(load_side(first, "baseline"), load_side(second, "candidate"), GateConfig())


def test_a_run_stamped_before_presets_had_versions_still_compares(tmp_path, manifest):
    first = run(prepare(planted_config(tmp_path, manifest))).paths.root
    legacy = tmp_path / "legacy"
    shutil.copytree(first, legacy)
    metrics = json.loads((legacy / "metrics.json").read_text())
    del metrics["provenance"]["normalizer_definition"]
    metrics["provenance"]["normalizer"] = "whisper-english@0.1.12"  # how runs were stamped before
    (legacy / "metrics.json").write_text(json.dumps(metrics))
    (legacy / "checksums.json").unlink()  # runs of that time had none
    result = run_gate(load_side(legacy, "baseline"), load_side(first, "candidate"), GateConfig())
    assert result.passed and "applied by whisper-normalizer 0.1.12 in the baseline" in result.warnings[0]
