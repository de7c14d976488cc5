from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.data.manifest import load_manifest, read_manifest
from harness.errors import InputError


def only_problem(manifest: Path, level: str = "error"):
    problems = [p for p in read_manifest(manifest).problems if p.level == level]
    assert len(problems) == 1, problems
    return problems[0]


def test_valid_manifest_resolves_audio_and_tags(make_manifest, tone):
    path = make_manifest([{"id": "a", "text": "hello there", "speaker": "s1", "accent": "scottish", "l1": "gd"}])
    manifest = load_manifest(path)
    (utt,) = manifest.utterances
    assert utt.audio == tone.resolve()
    assert utt.tags == {"accent": "scottish", "l1": "gd"}
    assert utt.language == "en" and utt.offset == 0.0 and utt.duration is None
    assert manifest.problems == () and len(manifest.sha256) == 64


def test_bad_json_names_line(make_manifest, tmp_path):
    path = make_manifest([{"id": "a", "text": "x", "speaker": "s"}])
    path.write_text(path.read_text() + '{"id": "b", "text": \n')
    problem = only_problem(path)
    assert problem.line == 2 and "bad JSON" in problem.message
    assert str(problem).startswith(f"{path}:2:")


def test_duplicate_id(make_manifest):
    path = make_manifest([{"id": "a", "text": "x", "speaker": "s"}, {"id": "a", "text": "y", "speaker": "s"}])
    problem = only_problem(path)
    assert (problem.line, problem.field) == (2, "id") and "first on line 1" in problem.message


def test_missing_audio(make_manifest):
    path = make_manifest([{"id": "a", "text": "x", "speaker": "s", "audio": "nope.wav"}])
    problem = only_problem(path)
    assert problem.field == "audio" and "not found" in problem.message


def test_unreadable_audio(make_manifest, tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00not really a wave file" * 10)
    path = make_manifest([{"id": "a", "text": "x", "speaker": "s", "audio": "junk.wav"}])
    problem = only_problem(path)
    assert problem.field == "audio" and "cannot read" in problem.message


def test_unknown_sample_format(make_manifest, tmp_path):
    (tmp_path / "notes.xyz").write_text("this is text, not audio")
    path = make_manifest([{"id": "a", "text": "x", "speaker": "s", "audio": "notes.xyz"}])
    assert "convert it to WAV or FLAC" in only_problem(path).message


def test_empty_reference(make_manifest):
    path = make_manifest([{"id": "a", "text": "   ", "speaker": "s"}])
    problem = only_problem(path)
    assert problem.field == "text" and "empty reference" in problem.message


def test_non_string_tag(make_manifest):
    path = make_manifest([{"id": "a", "text": "x", "speaker": "s", "age": 34}])
    problem = only_problem(path)
    assert problem.field == "age" and "quote it" in problem.message


def test_missing_speaker_is_a_warning(make_manifest):
    path = make_manifest([{"id": "a", "text": "x"}])
    manifest = load_manifest(path)  # does not raise
    (warning,) = manifest.warnings
    assert warning.field == "speaker" and "own speaker" in warning.message


def test_missing_required_fields_and_bad_numbers(make_manifest):
    path = make_manifest([{"speaker": "s", "offset": "soon", "duration": -1}])
    fields = {p.field for p in read_manifest(path).errors}
    assert {"id", "text", "offset", "duration"} <= fields


def test_segment_outside_file(make_manifest):
    path = make_manifest([{"id": "a", "text": "x", "speaker": "s", "offset": 0.4, "duration": 0.5}])
    assert "outside" in only_problem(path).message


def test_result_column_cannot_be_a_tag(make_manifest):
    path = make_manifest([{"id": "a", "text": "x", "speaker": "s", "wer": "low"}])
    assert only_problem(path).field == "wer"


def test_vocabulary_from_dataset_card(make_manifest, tmp_path):
    (tmp_path / "dataset.yaml").write_text("tags:\n  accent:\n    values: [scottish, welsh]\n")
    path = make_manifest([{"id": "a", "text": "x", "speaker": "s", "accent": "scotish"}])
    problem = only_problem(path)
    assert problem.field == "accent" and "vocabulary" in problem.message


def test_every_problem_reported_not_just_first(make_manifest):
    path = make_manifest(
        [
            {"id": "a", "text": "", "speaker": "s"},
            {"id": "b", "text": "x", "speaker": "s", "accent": 1},
            {"id": "b", "text": "x", "speaker": "s"},
        ]
    )
    assert [p.line for p in read_manifest(path).errors] == [1, 2, 3]
    with pytest.raises(InputError, match=r"manifest.jsonl:1: field 'text'.*and 2 more"):
        load_manifest(path)


def test_csv_manifest(tmp_path, tone):
    path = tmp_path / "m.csv"
    path.write_text(
        f'id,audio,text,speaker,accent,offset\na,{tone.name},"hello, world",s1,welsh,0.1\nb,{tone.name},bye,s2,,\n'
    )
    manifest = load_manifest(path)
    first, second = manifest.utterances
    assert first.text == "hello, world" and first.offset == pytest.approx(0.1) and first.tags == {"accent": "welsh"}
    assert second.tags == {}  # an empty cell is an absent tag


def test_csv_extra_cell_names_line(tmp_path, tone):
    path = tmp_path / "m.csv"
    path.write_text(f"id,audio,text\na,{tone.name},hi\nb,{tone.name},hi,extra\n")
    assert only_problem(path).line == 3


def test_not_found_manifest():
    with pytest.raises(InputError, match="manifest not found"):
        read_manifest(Path("/nonexistent/m.jsonl"))


def test_demo_manifest_is_valid():
    from conftest import DEMO

    manifest = load_manifest(DEMO / "manifest.jsonl")
    assert len(manifest.utterances) == 240 and not manifest.warnings
    accents = {u.tags["accent"] for u in manifest.utterances}
    assert accents == {"american", "british", "scottish", "caribbean"}
    assert json.loads((DEMO / "manifest.jsonl").read_text().splitlines()[0])["device"] == "tts"


def test_csv_keeps_newlines_inside_quoted_cells(tmp_path, tone):
    path = tmp_path / "m.csv"
    path.write_bytes(f'id,audio,text\r\na,{tone.name},"two\r\nlines here"\r\n'.encode())
    (utt,) = load_manifest(path).utterances
    assert utt.text.split() == ["two", "lines", "here"]


def test_csv_duplicate_header(tmp_path, tone):
    path = tmp_path / "m.csv"
    path.write_text(f"id,audio,text,accent,accent\na,{tone.name},hi,x,y\n")
    assert "duplicate column(s) accent" in only_problem(path).message


def test_jsonl_line_separator_inside_string_and_bom(make_manifest, tmp_path, tone):
    record = {"id": "a", "audio": tone.name, "text": "one\u2028two", "speaker": "s"}
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(record, ensure_ascii=False).encode() + b"\n")
    (utt,) = load_manifest(path).utterances
    assert utt.text == "one\u2028two"


def test_audio_probes_are_reused_until_the_file_changes(tmp_path):
    """A rerun trusts a file found whole before only while its size and modification time are the
    same: a truncated copy put in its place is opened and refused again."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    audio = tmp_path / "a.flac"
    sf.write(audio, 0.1 * rng.standard_normal(48_000), 16_000)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "u1", "audio": "a.flac", "text": "hi"}) + "\n", encoding="utf-8")
    probes = tmp_path / "cache" / "audio-probes.json"

    first = load_manifest(manifest, probes=probes)
    assert first.file_seconds == {audio.resolve(): 3.0}
    stored = json.loads(probes.read_text())
    assert list(stored.values()) == [[audio.stat().st_size, audio.stat().st_mtime_ns, 48_000, 16_000]]
    # the stored probe is what a rerun reads (the file is not opened again): shown by a planted length
    stored[str(audio.resolve())][2] = 32_000
    probes.write_text(json.dumps(stored))
    assert load_manifest(manifest, probes=probes).file_seconds == {audio.resolve(): 2.0}

    whole = audio.read_bytes()
    audio.write_bytes(whole[: len(whole) // 2])  # truncated: its header still promises 3 s
    problems = [str(p) for p in read_manifest(manifest, probes=probes).errors]
    assert len(problems) == 1 and "is truncated" in problems[0], problems
    assert str(audio.resolve()) in json.loads(probes.read_text())  # a bad file is never stored as whole
    assert json.loads(probes.read_text())[str(audio.resolve())][0] != audio.stat().st_size
