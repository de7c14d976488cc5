"""Kaldi data directories: merge-joined text/utt2spk/segments, wav.scp, tag files (tests/fixtures/kaldi)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli import invoke
from hypothesis import given, settings
from hypothesis import strategies as st
from importing import FIXTURES, import_validate_run

from harness.data.importers.kaldi import Piped, parse_pipe

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
    result = invoke("import", "kaldi", str(RECIPE / "data" / "unsorted"), "-o", str(tmp_path / "m.jsonl"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[0]
    assert "unsorted/text:3: is not sorted: key 'f003-u2' comes after 'f003-u3'" in error
    assert "utils/fix_data_dir.sh" in error and "LC_ALL=C sort" in error
    assert not (tmp_path / "m.jsonl").exists()


def test_repeated_keys_tag_files_and_bad_layouts(tmp_path):
    data = tmp_path / "data" / "dev"
    shutil.copytree(UNSEGMENTED, data)
    (data / "utt2lang").write_text("f003-u1 en-GB\nf003-u1 en-US\n", encoding="utf-8")
    repeated = invoke("import", "kaldi", str(data), "-o", str(tmp_path / "m.jsonl"), "-O", f"root={RECIPE}")
    assert repeated.returncode == 2 and "utt2lang:2: repeats key 'f003-u1'" in repeated.stderr

    (data / "utt2lang").unlink()
    (data / "utt2wer").write_text("f003-u1 0.1\n", encoding="utf-8")
    reserved = invoke("import", "kaldi", str(data), "-o", str(tmp_path / "m.jsonl"))
    assert reserved.returncode == 2 and "tag name 'wer' is a reserved manifest field" in reserved.stderr

    (data / "wav.scp").unlink()
    missing = invoke("import", "kaldi", str(data), "-o", str(tmp_path / "m.jsonl"))
    assert missing.returncode == 2 and "no wav.scp" in missing.stderr and "Traceback" not in missing.stderr
    split = invoke("import", "kaldi", str(SEGMENTED), "-o", str(tmp_path / "m.jsonl"), "--split", "test")
    assert split.returncode == 2 and "kaldi has no splits" in split.stderr
    root = invoke("import", "kaldi", str(SEGMENTED), "-o", str(tmp_path / "m.jsonl"), "-O", "root=/no/such/dir")
    assert root.returncode == 2 and "-O root=/no/such/dir: not a folder" in root.stderr


LHOTSE_EXPORT = RECIPE / "data" / "lhotse_export"  # written by lhotse's export_to_kaldi (make_fixture_pipes.py)
SOX = RECIPE / "data" / "test_sox"


def test_lhotse_export_to_kaldi_ffmpeg_pipes_and_utt2gender(tmp_path):
    imported = import_validate_run("kaldi", LHOTSE_EXPORT, tmp_path)
    by_id = {r["id"]: r for r in imported.records}
    assert list(by_id) == ["f005-conv_d-0000", "f005-conv_d-0060", "m006-conv_a-0010", "m006-conv_e-0000"]
    flac = by_id["f005-conv_d-0060"]
    assert flac["audio"].endswith("kaldi/s5/wav/flac/conv_d.flac")  # the file the ffmpeg pipe decodes
    assert (flac["offset"], flac["duration"]) == (0.6, 0.6)
    assert [r["gender"] for r in imported.records] == ["female", "female", "male", "male"]  # utt2gender f/m
    assert by_id["m006-conv_a-0010"]["audio"].endswith("kaldi/s5/wav/conv_a.wav")  # a one-channel WAV: no pipe
    assert not imported.rejects


def test_sox_and_flac_pipes_are_read_as_their_files_and_other_commands_rejected(tmp_path):
    imported = import_validate_run("kaldi", SOX, tmp_path)
    by_id = {r["id"]: r for r in imported.records}
    assert list(by_id) == ["f007-u1", "f007-u2", "f007-u3", "m008-u1"]
    assert by_id["f007-u1"]["audio"].endswith("kaldi/s5/wav/utts/f003-u1.wav")  # format options dropped
    trimmed = by_id["f007-u2"]
    assert trimmed["audio"].endswith("kaldi/s5/wav/conv_a.wav") and (trimmed["offset"], trimmed["duration"]) == (
        0.2, 0.5,
    )  # fmt: skip  # sox trim START LENGTH
    assert by_id["f007-u3"]["audio"].endswith("wav/flac/conv_d.flac")  # remix 1 of a one-channel file
    assert by_id["m008-u1"]["audio"].endswith("wav/flac/conv_e.flac")  # LibriSpeech's flac -c -d -s
    assert [r["gender"] for r in imported.records] == ["female", "female", "female", "male"]
    rejects = {r["id"]: (r["reason"], r["detail"]) for r in imported.rejects}
    assert rejects["m008-u2"][0] == "piped audio" and "effect 'vol' changes the audio" in rejects["m008-u2"][1]
    assert rejects["m008-u3"][0] == "piped audio" and "more than one command" in rejects["m008-u3"][1]
    assert not (tmp_path / "copy.wav").exists() and not Path("/tmp/copy.wav").exists()  # nothing was run


def test_a_pipe_picking_one_channel_of_a_stereo_file_is_rejected(tmp_path):
    data = tmp_path / "data" / "test"
    data.mkdir(parents=True)
    rate = 8000
    stereo = np.zeros((rate, 2), dtype=np.float32)
    sf.write(tmp_path / "call.wav", stereo, rate)
    (data / "wav.scp").write_text("a-1 sox call.wav -t wav - remix 2 |\nb-1 sox call.wav -t wav - |\n")
    (data / "text").write_text("a-1 hello there\nb-1 hello again\n")
    (data / "utt2spk").write_text("a-1 a\nb-1 b\n")
    manifest = tmp_path / "out" / "m.jsonl"
    result = invoke("import", "kaldi", str(data), "-o", str(manifest), "-O", f"root={tmp_path}", "--json")
    assert result.returncode == 0, result.stderr
    (reject,) = [json.loads(line) for line in manifest.with_name("m.rejects.jsonl").read_text().splitlines()]
    assert (reject["id"], reject["reason"]) == ("a-1", "one channel of a multi-channel file")
    assert "picks channel 2" in reject["detail"]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("sox wav/a.wav -t wav -r 16k -b 16 -e signed - |", Piped("wav/a.wav")),
        ("sox a.wav -t wav - trim 0:01.5 =3.5 rate -v 16k |", Piped("a.wav", 1.5, 2.0)),
        ("sox a.flac -t wav - remix 1 |", Piped("a.flac", channel=0)),
        ("ffmpeg -threads 1 -i x.flac -ar 16000 -map_channel 0.0.1  -f wav -threads 1 pipe:1 |",
         Piped("x.flac", channel=1)),
        ("ffmpeg -nostdin -ss 2 -t 1.5 -i a.mp3 -f wav - |", Piped("a.mp3", 2.0, 1.5)),
        ("flac -c -d -s /LibriSpeech/test-clean/1089/134686/1089-134686-0000.flac |",
         Piped("/LibriSpeech/test-clean/1089/134686/1089-134686-0000.flac")),
    ],
)
def test_parse_pipe_reads_the_well_known_decoders(entry, expected):
    assert parse_pipe(entry) == expected


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("sph2pipe -f wav -p -c 1 /LDC/sw02001.sph |", "shorten-compressed"),
        ("sph2pipe x.sph -f wav -c 1 -p | ffmpeg -threads 1 -i pipe:0 -ar 8000 -f wav -threads 1 pipe:1 |", "shorten"),
        ("gunzip -c x.wav.gz |", "'gunzip' is not a decoder"),
        ("sox a.wav -t wav - ; rm -rf ~ |", "shell syntax"),
        ("sox $(cat list) -t wav - |", "shell syntax"),
        ("sox a.wav -t wav - vol 2 |", "effect 'vol'"),
        ("sox a.wav out.wav |", "standard output"),
        ("ffmpeg -i a.wav -af volume=2 pipe:1 |", "option '-af'"),
        ("ffmpeg -i pipe:0 -f wav pipe:1 |", "standard input"),
        ("sox a.wav -t wav - trim 10s |", "time '10s'"),
    ],
)
def test_parse_pipe_rejects_anything_else_with_the_reason(entry, why):
    reason = parse_pipe(entry)
    assert isinstance(reason, str) and why in reason, reason


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.sampled_from(["sox", "ffmpeg", "flac", "sph2pipe", "/usr/bin/sox", ""]))
def test_parse_pipe_answers_any_text_and_never_passes_shell_syntax(tail, tool):
    entry = f"{tool} {tail} |"
    parsed = parse_pipe(entry)
    assert isinstance(parsed, Piped | str)
    if any(char in entry[:-1].rstrip() for char in ";&`$<>|"):
        assert isinstance(parsed, str)  # never read as a file: a second command could hide there
