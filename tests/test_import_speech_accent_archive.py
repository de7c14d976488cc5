"""Speech Accent Archive: the Kaggle release's speakers_all.csv and MP3s (tests/fixtures/speech-accent-archive)."""

from __future__ import annotations

import shutil

from cli import invoke
from importing import FIXTURES, import_validate_run

from harness.data.importers.speech_accent_archive import PASSAGE, SpeechAccentArchiveImporter

KAGGLE = FIXTURES / "speech-accent-archive" / "kaggle"
RESAVED = FIXTURES / "speech-accent-archive" / "resaved"
NO_AGE = {"age", "age_band", "english_onset_age"}


def test_kaggle_release_imports_validates_and_runs(tmp_path):
    imported = import_validate_run("speech-accent-archive", KAGGLE, tmp_path)
    by_id = {r["id"]: r for r in imported.records}
    assert list(by_id) == [
        "afrikaans1", "arabic2", "bambara1", "english1", "english494", "greek14",
        "lao2", "mandarin1", "mandarin2", "sinhala6", "taiwanese7",
    ]  # fmt: skip
    # one paragraph for everyone: reading-passage.txt, its line wraps and double spaces collapsed
    assert {r["text"] for r in imported.records} == {PASSAGE} and len(PASSAGE.split()) == 69
    assert PASSAGE.startswith("Please call Stella. Ask her") and PASSAGE.endswith("at the train station.")
    first = by_id["afrikaans1"]
    assert first["audio"].endswith("kaggle/recordings/recordings/afrikaans1.mp3")
    assert (first["speaker"], first["language"]) == ("1", "en") and not {"offset", "duration"} & set(first)
    assert {k: first[k] for k in ("l1", "l1_raw", "region", "region_raw", "birthplace", "gender")} == {
        "l1": "afrikaans", "l1_raw": "afrikaans", "region": "south-africa", "region_raw": "south africa",
        "birthplace": "virginia, south africa", "gender": "female",
    }  # fmt: skip
    assert (first["age"], first["age_band"], first["english_onset_age"]) == ("27", "20-29", "9")
    # the release's half years are kept; a native speaker's English onset is 0
    assert (by_id["arabic2"]["age"], by_id["arabic2"]["english_onset_age"]) == ("18", "2.5")
    assert (by_id["bambara1"]["age"], by_id["bambara1"]["age_band"]) == ("15.5", "10-19")
    assert (by_id["english494"]["age"], by_id["english494"]["age_band"]) == ("27.5", "20-29")
    assert by_id["english1"]["english_onset_age"] == "0"
    # a stray 'no' in a trailing unnamed column is ignored; an empty country gives no region at all
    assert by_id["greek14"]["region"] == "usa" and "no" not in by_id["greek14"].values()
    assert {"region", "region_raw"}.isdisjoint(by_id["lao2"]) and by_id["lao2"]["birthplace"] == "vientiane, laos,"
    # 'Mandarin ' and 'mandarin' are one group; the raw cell stays beside it
    assert [(by_id[m]["l1"], by_id[m]["l1_raw"]) for m in ("mandarin1", "mandarin2")] == [
        ("mandarin", "Mandarin"), ("mandarin", "mandarin"),
    ]  # fmt: skip
    assert by_id["sinhala6"]["l1"] == "sinhala"  # flagged rows spell it 'sinhalese': not merged
    assert (by_id["taiwanese7"]["gender"], by_id["taiwanese7"]["speaker"]) == ("female", "1864")  # 'famale'

    assert imported.summary["rejected"] == {
        "flagged file_missing": 3, "duplicate filename": 1, "malformed row": 1, "synthesized voice": 1,
        "missing audio": 1, "not in speakers_all.csv": 1,
    }  # fmt: skip
    assert [(r["id"], r["reason"], r["source"]) for r in imported.rejects] == [
        ("balanta", "flagged file_missing", "speakers_all.csv:2"),
        ("haitian", "flagged file_missing", "speakers_all.csv:3"),
        ("haitian", "flagged file_missing", "speakers_all.csv:4"),  # the same filename: no number
        ("english1", "duplicate filename", "speakers_all.csv:9"),
        ("mandarin5", "malformed row", "speakers_all.csv:15"),
        ("synthesized1", "synthesized voice", "speakers_all.csv:17"),
        ("tagalog2", "missing audio", "speakers_all.csv:18"),
        ("zulu1", "not in speakers_all.csv", "recordings/recordings/zulu1.mp3"),
    ]
    assert imported.summary["speakers"] == 11 and imported.summary["tags"]["gender"] == {"female": 8, "male": 3}
    assert imported.summary["tags"]["l1"]["english"] == 2 and imported.summary["tags"]["region"]["usa"] == 3
    card = (imported.manifest.parent / "dataset.yaml").read_text(encoding="utf-8")
    assert "licence: CC BY-NC-SA 2.0" in card
    assert "  gender:\n    description: '''sex'' column" in card and card.rstrip().endswith("self_reported: false")
    assert SpeechAccentArchiveImporter(KAGGLE, SpeechAccentArchiveImporter.Options()).estimate() == 18


def test_a_pandas_resaved_copy_with_flat_recordings_and_the_built_in_passage(tmp_path):
    imported = import_validate_run("speech-accent-archive", RESAVED, tmp_path / "default")
    assert [(r["id"], r["age"], r["english_onset_age"], r["speaker"]) for r in imported.records] == [
        ("afrikaans1", "27", "9", "1"),  # 27.0 and 9.0 as written plainly
        ("zulu1", "24", "14", "406"),
    ]
    assert imported.records[0]["audio"].endswith("resaved/recordings/afrikaans1.mp3")
    assert {r["text"] for r in imported.records} == {PASSAGE}  # no reading-passage.txt: the built-in one
    assert [(r["id"], r["reason"], r["source"]) for r in imported.rejects] == [
        ("balanta", "flagged file_missing", "speakers_all.csv:2"),  # 'True', as pandas writes it
        ("synthesized2", "synthesized voice", "speakers_all.csv:4"),
    ]

    kept = import_validate_run("speech-accent-archive", RESAVED, tmp_path / "kept", "-O", "include_synthesized=true")
    voice = {r["id"]: r for r in kept.records}["synthesized2"]
    assert (voice["l1"], voice["gender"], voice["speaker"]) == ("synthesized", "female", "356")
    # age 0 is the placeholder of a voice with no speaker: no age tags, no birthplace, no region
    assert (NO_AGE | {"birthplace", "region", "region_raw"}).isdisjoint(voice)
    assert len(kept.records) == 3 and kept.summary["rejected"] == {"flagged file_missing": 1}


def test_reading_passage_txt_is_the_reference(tmp_path):
    source = tmp_path / "release"
    shutil.copytree(KAGGLE, source)
    (source / "reading-passage.txt").write_text("\ufeffPlease  call\nStella.\n", encoding="utf-8")
    imported = import_validate_run("speech-accent-archive", source, tmp_path)
    assert {r["text"] for r in imported.records} == {"Please call Stella."}


def test_bad_layouts_and_options_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    no_audio = tmp_path / "no-audio"
    no_audio.mkdir()
    shutil.copy(KAGGLE / "speakers_all.csv", no_audio)
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    shutil.copy(KAGGLE / "speakers_all.csv", zipped)
    (zipped / "recordings.zip").write_bytes(b"PK")
    blank = tmp_path / "blank"
    shutil.copytree(KAGGLE, blank)
    (blank / "reading-passage.txt").write_text(" \n", encoding="utf-8")
    other = tmp_path / "other"
    shutil.copytree(RESAVED, other)
    (other / "speakers_all.csv").write_text("age,file,sex\n24,a1,male\n", encoding="utf-8")
    out = str(tmp_path / "m.jsonl")
    cases = [
        ((str(empty),), "no speakers_all.csv; pass the folder of a speech-accent-archive release"),
        ((str(no_audio),), "no recordings/ folder of MP3s"),
        ((str(zipped),), "recordings.zip is not unpacked; unzip it here"),
        ((str(blank),), "reading-passage.txt: empty; restore the release's copy or delete it"),
        ((str(other),), "no 'filename' column; is this the Speech Accent Archive's speakers_all.csv?"),
        ((str(KAGGLE), "--split", "test"), "--split test: speech-accent-archive has no splits"),
        ((str(KAGGLE), "-O", "mics=a"), "mics"),
        ((str(KAGGLE), "-O", "include_synthesized=maybe"), "include_synthesized"),
    ]
    for args, message in cases:
        result = invoke("import", "speech-accent-archive", *args, "-o", out)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
