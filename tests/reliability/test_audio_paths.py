"""Audio path policy: a manifest reads audio only inside its own folder unless the run allows more.

A manifest may come from someone else (a bias bounty, a vendor's test set); without this rule it
could make a run read any file on the machine and upload it to a cloud API.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cli import asrfair
from conftest import write_config, write_jsonl, write_tone

from harness.config import load_config
from harness.data.manifest import load_manifest, read_manifest
from harness.errors import InputError
from harness.pipeline import prepare, run


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """``data/`` holds a manifest and ``clips/in.wav``; ``elsewhere/out.wav`` lies outside it."""
    data = tmp_path / "data"
    write_tone(data / "clips" / "in.wav")
    write_tone(tmp_path / "elsewhere" / "out.wav", seconds=0.6)
    return data, tmp_path / "elsewhere"


def manifest_with(data: Path, *audio: str) -> Path:
    records = [{"id": f"u{i}", "audio": a, "text": "a b", "speaker": "s"} for i, a in enumerate(audio)]
    return write_jsonl(data / "manifest.jsonl", records)


def audio_errors(manifest: Path, **kwargs: object) -> list[str]:
    return [str(p) for p in read_manifest(manifest, **kwargs).errors]


def test_paths_inside_the_folder_are_read_however_spelled(layout):
    data, _ = layout
    manifest = manifest_with(data, "clips/in.wav", "clips/../clips/in.wav", str(data / "clips" / "in.wav"))
    loaded = load_manifest(manifest)
    assert {u.audio for u in loaded.utterances} == {(data / "clips" / "in.wav").resolve()}


@pytest.mark.parametrize("spelling", ["../elsewhere/out.wav", "clips/../../elsewhere/out.wav", "ABSOLUTE"])
def test_a_path_that_leaves_the_folder_is_an_error_naming_line_and_fix(layout, spelling):
    data, elsewhere = layout
    given = str(elsewhere / "out.wav") if spelling == "ABSOLUTE" else spelling
    manifest = manifest_with(data, "clips/in.wav", given)
    [error] = audio_errors(manifest)
    resolved = (elsewhere / "out.wav").resolve()
    assert error.startswith(f"{manifest}:2: field 'audio' error: {given} resolves to {resolved}")
    assert "outside the manifest's folder" in error and "audio_roots" in error and "\n" not in error
    assert not audio_errors(manifest, audio_roots=[elsewhere])


def test_a_symlink_is_judged_by_where_it_points(layout):
    data, elsewhere = layout
    (data / "clips" / "escape.wav").symlink_to(elsewhere / "out.wav")
    (data / "clips" / "alias.wav").symlink_to(data / "clips" / "in.wav")
    (data / "corpus").symlink_to(elsewhere, target_is_directory=True)
    manifest = manifest_with(data, "clips/alias.wav", "clips/escape.wav", "corpus/out.wav")
    errors = audio_errors(manifest)
    assert [e.split(": field")[0] for e in errors] == [f"{manifest}:2", f"{manifest}:3"]
    assert not audio_errors(manifest, audio_roots=[elsewhere])


def test_a_file_the_rule_rejects_is_never_opened(layout):
    data, _ = layout
    manifest = manifest_with(data, "clips/in.wav", "/etc/passwd")
    [error] = audio_errors(manifest)  # one error, not also "cannot read /etc/passwd" from opening it
    assert "outside the manifest's folder" in error


def test_the_run_config_allows_folders_relative_to_itself(layout, tmp_path):
    data, elsewhere = layout
    manifest = manifest_with(data, "clips/in.wav", "../elsewhere/out.wav")
    refused = write_config(tmp_path / "refused.yaml", manifest, {"name": "stub"})
    with pytest.raises(InputError, match="outside the manifest's folder"):
        prepare(load_config(refused))
    allowed = write_config(tmp_path / "allowed.yaml", manifest, {"name": "stub"}, audio_roots=["elsewhere"])
    config = load_config(allowed)
    assert config.audio_roots == [elsewhere.resolve()]
    outcome = run(prepare(config))
    assert outcome.metrics["overall"]["utterances"] == 2 and outcome.metrics["failures"]["count"] == 0


def test_validate_takes_audio_root(layout):
    data, elsewhere = layout
    manifest = manifest_with(data, "../elsewhere/out.wav")

    def validate(*extra: str) -> subprocess.CompletedProcess:
        return asrfair("validate", str(manifest), *extra)

    refused = validate()
    assert refused.returncode == 2 and "outside the manifest's folder" in refused.stderr
    assert "Traceback" not in refused.stderr
    allowed = validate("--audio-root", str(elsewhere))
    assert allowed.returncode == 0, allowed.stderr


def test_coverage_reads_durations_only_where_a_run_may_read_audio(layout, caplog):
    from harness.stats.coverage import coverage

    data, elsewhere = layout
    manifest = manifest_with(data, "clips/in.wav", "../elsewhere/out.wav")
    refused = coverage(manifest, min_speakers=1, min_words=1)
    assert refused.hours is None  # the outside file's length is unknown: it was never opened
    assert "1 audio files lie outside the manifest's folder and were not opened" in caplog.text
    allowed = coverage(manifest, min_speakers=1, min_words=1, audio_roots=[elsewhere])
    assert allowed.hours == pytest.approx((0.5 + 0.6) / 3600)
