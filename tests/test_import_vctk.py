"""CSTR VCTK: the 0.92 layout (mic1/mic2 FLAC) and the 0.80 layout (wav48) (tests/fixtures/vctk)."""

from __future__ import annotations

import shutil

import pytest
from cli import invoke
from importing import FIXTURES, import_validate_run

from harness.data.importers.vctk import accent_label, parse_speaker_line

RELEASE = FIXTURES / "vctk" / "VCTK-Corpus-0.92"
OLD_RELEASE = FIXTURES / "vctk" / "VCTK-Corpus"


def test_092_mic1_imports_validates_and_runs(tmp_path):
    imported = import_validate_run("vctk", RELEASE, tmp_path)
    by_id = {r["id"]: r for r in imported.records}
    assert list(by_id) == ["p225_001", "p225_002", "p248_001", "p261_001", "p280_001", "p326_001"]
    first = by_id["p225_001"]
    assert first["audio"].endswith("wav48_silence_trimmed/p225/p225_001_mic1.flac")
    assert (first["text"], first["speaker"], first["language"]) == ("Please call Stella.", "p225", "en")
    assert {k: first[k] for k in ("accent", "accent_raw", "region", "age", "age_band", "gender", "device")} == {
        "accent": "english", "accent_raw": "English", "region": "Southern England",
        "age": "23", "age_band": "20-29", "gender": "female", "device": "mic1",
    }  # fmt: skip
    assert "offset" not in first and "duration" not in first  # one file per utterance
    # REGION may be empty (no tag), several words, or follow a two-word accent
    assert "region" not in by_id["p248_001"] and by_id["p248_001"]["accent"] == "indian"
    assert (by_id["p261_001"]["accent"], by_id["p261_001"]["accent_raw"]) == ("northern-irish", "NorthernIrish")
    australian = by_id["p326_001"]
    assert (australian["accent"], australian["accent_raw"], australian["region"]) == (
        "australian-english", "Australian English", "Sydney",
    )  # fmt: skip
    assert australian["gender"] == "male"
    # p280's ACCENTS is "Unknown": no accent group, the raw text kept; its comment is not the region
    unknown = by_id["p280_001"]
    assert "accent" not in unknown and (unknown["accent_raw"], unknown["region"]) == ("Unknown", "France")

    assert imported.summary["rejected"] == {
        "no mic1 recording": 1, "no transcript file": 1, "speaker not in speaker-info.txt": 1,
    }  # fmt: skip
    assert [(r["id"], r["reason"], r["source"]) for r in imported.rejects] == [
        ("p225_003", "no mic1 recording", "txt/p225/p225_003.txt:1"),
        ("p315_001", "no transcript file", "wav48_silence_trimmed/p315/p315_001_mic1.flac"),
        ("s5_001", "speaker not in speaker-info.txt", "txt/s5/s5_001.txt:1"),
    ]
    assert imported.summary["speakers"] == 5
    assert imported.summary["tags"]["device"] == {"mic1": 6}
    card = (imported.manifest.parent / "dataset.yaml").read_text(encoding="utf-8")
    assert "CC-BY-4.0" in card and "self_reported: false" in card and "self_reported: true" not in card


def test_both_mics_one_record_each_and_p280_has_no_mic2(tmp_path):
    imported = import_validate_run("vctk", RELEASE, tmp_path, "-O", "mics=mic1,mic2")
    ids = [r["id"] for r in imported.records]
    assert ids[:4] == ["p225_001_mic1", "p225_001_mic2", "p225_002_mic1", "p225_002_mic2"]
    assert "p280_001_mic1" in ids and "p280_001_mic2" not in ids
    assert imported.summary["tags"]["device"] == {"mic1": 6, "mic2": 5}
    mic2 = next(r for r in imported.records if r["id"] == "p225_001_mic2")
    assert mic2["audio"].endswith("p225/p225_001_mic2.flac") and mic2["device"] == "mic2"
    rejects = {(r["id"], r["reason"]): r for r in imported.rejects}
    p280 = rejects[("p280_001_mic2", "no mic2 recording")]
    assert p280["source"] == "txt/p280/p280_001.txt:1"
    assert p280["detail"].endswith("(speaker-info.txt: mic2 files unavailable)")
    # p315: no transcript for either microphone, both named by the audio file that exists
    assert rejects[("p315_001_mic2", "no transcript file")]["source"] == "wav48_silence_trimmed/p315/p315_001_mic1.flac"
    assert imported.summary["rejected"] == {
        "no transcript file": 2, "speaker not in speaker-info.txt": 2, "no mic1 recording": 1, "no mic2 recording": 2,
    }  # fmt: skip

    only2 = import_validate_run("vctk", RELEASE, tmp_path / "mic2", "-O", "mics=mic2")
    assert [r["id"] for r in only2.records][:2] == ["p225_001", "p225_002"]  # one mic: ids unsuffixed
    assert only2.summary["tags"]["device"] == {"mic2": 5}


def test_unlisted_speakers_kept_untagged_on_request(tmp_path):
    imported = import_validate_run("vctk", RELEASE, tmp_path, "-O", "unlisted=keep")
    s5 = next(r for r in imported.records if r["id"] == "s5_001")
    assert (s5["speaker"], s5["device"]) == ("s5", "mic1")
    assert {"accent", "accent_raw", "age", "gender", "region"}.isdisjoint(s5)
    assert "speaker not in speaker-info.txt" not in imported.summary["rejected"]


def test_old_wav48_release(tmp_path):
    imported = import_validate_run("vctk", OLD_RELEASE, tmp_path)
    assert [(r["id"], r["speaker"], r["accent"], r["device"]) for r in imported.records] == [
        ("p225_001", "p225", "english", "mic1"),
        ("p335_001", "p335", "new-zealand-english", "mic1"),  # "NewZealand  English" is one accent
    ]
    assert imported.records[0]["audio"].endswith("wav48/p225/p225_001.wav")
    assert imported.records[0]["region"] == "Southern England" and "region" not in imported.records[1]
    assert [(r["id"], r["reason"], r["source"]) for r in imported.rejects] == [
        ("p315_001", "no transcript file", "wav48/p315/p315_001.wav"),  # 0.80 ids are "315", folders "p315"
    ]
    two = invoke("import", "vctk", str(OLD_RELEASE), "-o", str(tmp_path / "x" / "m.jsonl"), "-O", "mics=mic1,mic2")
    assert two.returncode == 2 and "release 0.80 (wav48/) has one microphone" in two.stderr
    assert "Traceback" not in two.stderr


def test_bad_layout_and_options_are_one_line_errors(tmp_path):
    out = str(tmp_path / "m.jsonl")
    parent = invoke("import", "vctk", str(FIXTURES / "vctk"), "-o", out)
    assert parent.returncode == 2 and "Traceback" not in parent.stderr
    assert "no speaker-info.txt here, but" in parent.stderr and "VCTK-Corpus has one; pass that folder" in parent.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "speaker-info.txt").write_text("ID  AGE  GENDER  ACCENTS  REGION\n", encoding="utf-8")
    no_txt = invoke("import", "vctk", str(empty), "-o", out)
    assert no_txt.returncode == 2 and "no txt;" in no_txt.stderr and len(no_txt.stderr.strip().splitlines()) == 1
    (empty / "txt").mkdir()
    no_audio = invoke("import", "vctk", str(empty), "-o", out)
    assert no_audio.returncode == 2 and "no wav48_silence_trimmed or wav48" in no_audio.stderr
    bad_mic = invoke("import", "vctk", str(RELEASE), "-o", out, "-O", "mics=mic3")
    assert bad_mic.returncode == 2 and "mic1" in bad_mic.stderr and "Traceback" not in bad_mic.stderr
    split = invoke("import", "vctk", str(RELEASE), "-o", out, "--split", "test")
    assert split.returncode == 2 and "vctk has no splits" in split.stderr


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("p225  23  F    English    Southern  England", ("p225", "23", "F", "English", "Southern England", "")),
        ("p280  25  F    Unknown  France (mic2 files unavailable) ",
         ("p280", "25", "F", "Unknown", "France", "mic2 files unavailable")),
        ("326  26  M    Australian  English  Sydney", ("p326", "26", "M", "Australian English", "Sydney", "")),
        ("376  22  M    Indian", ("p376", "22", "M", "Indian", "", "")),
    ],
)  # fmt: skip
def test_speaker_info_rows(line, expected):
    row = parse_speaker_line(line)
    assert row is not None
    assert (row.id, row.age, row.gender, row.accent, row.region, row.comment) == expected


def test_speaker_info_header_blank_and_labels():
    assert parse_speaker_line("ID  AGE  GENDER  ACCENTS  REGION COMMENTS ") is None
    assert parse_speaker_line("   ") is None
    assert (accent_label("SouthAfrican"), accent_label("Unknown"), accent_label("NewZealand English")) == (
        "south-african", "", "new-zealand-english",
    )  # fmt: skip


def test_a_speaker_info_row_too_short_is_a_reject_with_its_line(tmp_path):
    copy = tmp_path / "VCTK-Corpus-0.92"
    shutil.copytree(RELEASE, copy)
    info = copy / "speaker-info.txt"
    info.write_text(info.read_text(encoding="utf-8") + "p999  23\n", encoding="utf-8")
    imported = import_validate_run("vctk", copy, tmp_path / "out")
    bad = [r for r in imported.rejects if r["reason"] == "malformed speaker-info row"]
    assert [(r["source"], r["detail"]) for r in bad] == [("speaker-info.txt:8", "p999  23")]
