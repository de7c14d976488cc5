"""Kaldi data directories: merge-joined text/utt2spk/segments, wav.scp, tag files (tests/fixtures/kaldi)."""

from __future__ import annotations

import shutil

from importing import FIXTURES, asrfair, import_validate_run

RECIPE = FIXTURES / "kaldi" / "s5"
SEGMENTED = RECIPE / "data" / "test"
UNSEGMENTED = RECIPE / "data" / "test_noseg"


def test_segmented_directory_imports_validates_and_runs(tmp_path):
    imported = import_validate_run("kaldi", SEGMENTED, tmp_path)
    by_id = {r["id"]: r for r in imported.records}
    assert list(by_id) == ["f001-conv_a-0000", "f001-conv_a-0050", "m002-conv_a-0030", "m002-conv_b-0000"]
    first = by_id["f001-conv_a-0000"]
    assert first["audio"].endswith("kaldi/s5/wav/conv_a.wav")  # relative to the recipe root, two levels up
    assert (first["text"], first["speaker"], first["gender"], first["accent"]) == (
        "the birch canoe slid on the smooth planks", "f001", "female", "scottish",
    )  # fmt: skip
    assert "offset" not in first and first["duration"] == 0.45  # a segment from 0 s
    second = by_id["f001-conv_a-0050"]
    assert (second["offset"], second["duration"]) == (0.5, 0.7) and "accent" not in second  # not in utt2accent
    to_end = by_id["m002-conv_a-0030"]
    assert to_end["offset"] == 0.3 and "duration" not in to_end  # end -1: to the end of the recording
    spaced = by_id["m002-conv_b-0000"]
    assert spaced["audio"].endswith("kaldi/s5/wav/conv b.wav")  # a wav.scp path holding a space
    assert (spaced["text"], spaced["gender"], spaced["accent"]) == (
        "the juice of lemons makes fine punch", "male", "general american",
    )  # fmt: skip
    assert all(r["language"] == "en" for r in imported.records)
    assert set(imported.summary["tags"]) == {"gender", "accent"}  # utt2dur, spk2utt, reco2* are no tags

    assert imported.summary["rejected"] == {
        "piped audio": 1, "not in wav.scp": 1, "empty transcript": 1, "empty segment": 1,
        "malformed segment": 1, "segment channel": 1, "not in segments": 1, "not in utt2spk": 1, "not in text": 1,
    }  # fmt: skip
    assert [(r["id"], r["reason"], r["source"]) for r in imported.rejects] == [
        ("f001-conv_c-0000", "piped audio", "text:3"),
        ("f001-conv_x-0000", "not in wav.scp", "text:4"),
        ("m002-conv_b-0040", "empty transcript", "text:7"),
        ("m002-conv_b-0085", "empty segment", "text:8"),
        ("m002-conv_b-0090", "malformed segment", "text:9"),
        ("m002-conv_b-0095", "segment channel", "text:10"),
        ("m002-extra-0001", "not in segments", "text:11"),
        ("m002-nospk-0001", "not in utt2spk", "text:12"),
        ("m002-notext-0001", "not in text", "utt2spk:12"),  # no text line: the first file that lists it
    ]
    details = {r["id"]: r["detail"] for r in imported.rejects}
    assert "extract the audio to files first" in details["f001-conv_c-0000"]
    assert details["m002-conv_b-0090"] == "segments:9: 'conv_b abc 0.95'"
    assert imported.summary["speakers"] == 2


def test_unsegmented_directory_joins_wav_scp_and_resolves_relative_paths(tmp_path):
    imported = import_validate_run("kaldi", UNSEGMENTED, tmp_path / "a", "-O", "language=en-gb")
    by_id = {r["id"]: r for r in imported.records}
    assert list(by_id) == ["f003-u1", "f003-u2"]
    assert by_id["f003-u1"]["audio"].endswith("kaldi/s5/wav/utts/f003-u1.wav")  # under the recipe root
    assert by_id["f003-u2"]["audio"].endswith("kaldi/s5/data/test_noseg/audio/f003-u2.wav")  # under the data dir
    assert [(r["lang"], r["gender"], r["language"]) for r in imported.records] == [("en-GB", "female", "en-gb")] * 2
    assert not any("offset" in r or "duration" in r for r in imported.records)  # whole files
    assert [(r["id"], r["reason"], r["source"]) for r in imported.rejects] == [
        ("f003-u3", "missing audio", "text:3"),
        ("m004-u1", "piped audio", "text:4"),
        ("m004-u2", "audio in an ark", "text:5"),
        ("m004-u3", "missing audio", "text:6"),
    ]
    searched = imported.rejects[3]["detail"]
    assert "relative to" in searched and "data/test_noseg, " in searched and "-O root=DIR" in searched

    rooted = import_validate_run("kaldi", UNSEGMENTED, tmp_path / "b", "-O", f"root={RECIPE}")
    assert [r["id"] for r in rooted.records] == ["f003-u1"]  # -O root: only there, no search
    assert rooted.summary["rejected"]["missing audio"] == 3


def test_an_unsorted_file_stops_with_its_line_and_the_fix(tmp_path):
    result = asrfair("import", "kaldi", str(RECIPE / "data" / "unsorted"), "-o", str(tmp_path / "m.jsonl"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[0]
    assert "unsorted/text:3: is not sorted: key 'f003-u2' comes after 'f003-u3'" in error
    assert "utils/fix_data_dir.sh" in error and "LC_ALL=C sort" in error
    assert not (tmp_path / "m.jsonl").exists()


def test_repeated_keys_tag_files_and_bad_layouts(tmp_path):
    data = tmp_path / "data" / "dev"
    shutil.copytree(UNSEGMENTED, data)
    (data / "utt2lang").write_text("f003-u1 en-GB\nf003-u1 en-US\n", encoding="utf-8")
    repeated = asrfair("import", "kaldi", str(data), "-o", str(tmp_path / "m.jsonl"), "-O", f"root={RECIPE}")
    assert repeated.returncode == 2 and "utt2lang:2: repeats key 'f003-u1'" in repeated.stderr

    (data / "utt2lang").unlink()
    (data / "utt2wer").write_text("f003-u1 0.1\n", encoding="utf-8")
    reserved = asrfair("import", "kaldi", str(data), "-o", str(tmp_path / "m.jsonl"))
    assert reserved.returncode == 2 and "tag name 'wer' is a reserved manifest field" in reserved.stderr

    (data / "wav.scp").unlink()
    missing = asrfair("import", "kaldi", str(data), "-o", str(tmp_path / "m.jsonl"))
    assert missing.returncode == 2 and "no wav.scp" in missing.stderr and "Traceback" not in missing.stderr
    split = asrfair("import", "kaldi", str(SEGMENTED), "-o", str(tmp_path / "m.jsonl"), "--split", "test")
    assert split.returncode == 2 and "kaldi has no splits" in split.stderr
    root = asrfair("import", "kaldi", str(SEGMENTED), "-o", str(tmp_path / "m.jsonl"), "-O", "root=/no/such/dir")
    assert root.returncode == 2 and "-O root=/no/such/dir: not a folder" in root.stderr
