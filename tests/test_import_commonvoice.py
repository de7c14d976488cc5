"""Common Voice: a release's locale folder of TSVs and MP3 clips (tests/fixtures/commonvoice)."""

from __future__ import annotations

import json
import shutil

from cli import invoke
from importing import FIXTURES, import_validate_run

RELEASE = FIXTURES / "commonvoice" / "cv-corpus-20.0-2024-12-06" / "en"
OLD_RELEASE = FIXTURES / "commonvoice" / "cv-corpus-5.1-2020-06-22" / "en"


def test_test_split_imports_validates_and_runs(tmp_path):
    imported = import_validate_run("commonvoice", RELEASE, tmp_path)
    by_id = {r["id"]: r for r in imported.records}
    assert list(by_id) == [
        "common_voice_en_41236891",
        "common_voice_en_41236892",
        "common_voice_en_39587123",
        "common_voice_en_40112233",
        "common_voice_en_38999001",
        "common_voice_en_37000042",
    ]
    first = by_id["common_voice_en_41236891"]
    assert first["audio"].endswith("en/clips/common_voice_en_41236891.mp3")
    assert first["speaker"] == by_id["common_voice_en_41236892"]["speaker"] and len(first["speaker"]) == 128
    assert (first["accent"], first["accent_raw"], first["age_band"], first["gender"], first["locale"]) == (
        "united-states-english", "United States English", "20-29", "male_masculine", "en",
    )  # fmt: skip
    # an empty accents/age/gender cell is no tag, not an empty group
    assert {"accent", "accent_raw", "age_band", "age_raw", "gender"}.isdisjoint(by_id["common_voice_en_39587123"])
    several = by_id["common_voice_en_40112233"]
    assert (several["accent"], several["accent_raw"]) == ("england-english", "England English|Northern English")
    # one age convention across importers: age_band is a ten-year band; Common Voice's own spelling is kept raw
    assert (several["age_band"], several["age_raw"]) == ("40-49", "fourties")
    quoted = by_id["common_voice_en_38999001"]
    assert quoted["text"] == 'He said "rice is often served in round bowls.'  # unquoted TSV: a bare quote is text
    assert (quoted["segment"], quoted["domain"]) == ("Benchmark", "general")

    assert imported.summary["rejected"] == {"missing audio": 1, "empty transcript": 1}
    assert {(r["id"], r["reason"], r["source"]) for r in imported.rejects} == {
        ("common_voice_en_41000007", "missing audio", "test.tsv:8"),
        ("common_voice_en_41000099", "empty transcript", "test.tsv:9"),
    }
    assert imported.summary["tags"]["accent"]["united-states-english"] == 2
    assert imported.summary["speakers"] == 5
    card = (imported.manifest.parent / "dataset.yaml").read_text(encoding="utf-8")
    assert "generator: asrfair import" in card and "self_reported: true" in card


def test_split_and_an_older_release(tmp_path):
    validated = import_validate_run("commonvoice", RELEASE, tmp_path / "v", "--split", "validated")
    assert validated.summary["split"] == "validated" and len(validated.records) == 8 and not validated.rejects
    old = import_validate_run("commonvoice", OLD_RELEASE, tmp_path / "old")
    assert [(r["id"], r.get("accent"), r.get("gender")) for r in old.records] == [
        ("common_voice_en_100001", "us", "male"),
        ("common_voice_en_100002", None, None),
    ]
    bad = invoke("import", "commonvoice", str(RELEASE), "-o", str(tmp_path / "m.jsonl"), "--split", "tset")
    assert bad.returncode == 2 and "--split tset: commonvoice splits are test, dev, train" in bad.stderr
    missing = invoke("import", "commonvoice", str(RELEASE), "-o", str(tmp_path / "m.jsonl"), "--split", "dev")
    assert missing.returncode == 2 and "no dev.tsv" in missing.stderr and "Traceback" not in missing.stderr


def test_map_narrows_free_text_accents_and_lists_the_unmapped(tmp_path):
    imported = import_validate_run(
        "commonvoice", RELEASE, tmp_path, "--map", str(FIXTURES / "commonvoice" / "accents.yaml")
    )
    assert imported.summary["tags"]["accent"] == {"us": 2, "other": 1, "england": 1, "south-asia": 1}
    assert imported.summary["unmapped"] == {"accent": {"canadian-english": 1}}
    assert all(r["accent_raw"] for r in imported.records if "accent" in r)  # the raw text stays beside it
    table = invoke("import", "commonvoice", str(RELEASE), "-o", str(tmp_path / "t" / "m.jsonl"),
                    "--map", str(FIXTURES / "commonvoice" / "accents.yaml"))  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "accent: 1 values not in the tag map: canadian-english (1)" in table.stdout
    assert "missing audio" in table.stdout and "next: asrfair validate" in table.stderr
    assert json.loads((tmp_path / "t" / "m.rejects.jsonl").read_text().splitlines()[0])["reason"] == "missing audio"


CV11 = FIXTURES / "commonvoice" / "cv-corpus-11.0-2022-09-21" / "en"
CV61 = FIXTURES / "commonvoice" / "cv-corpus-6.1-2020-12-11" / "en"
CV4_WELSH = FIXTURES / "commonvoice" / "cv-corpus-4-2019-12-10" / "cy"


def test_releases_8_to_16_list_accents_with_commas_and_the_first_is_the_accent(tmp_path):
    imported = import_validate_run("commonvoice", CV11, tmp_path)
    by_id = {r["id"]: r for r in imported.records}
    boston = by_id["common_voice_en_32845010"]
    assert boston["accent"] == "united-states-english"  # not one fragment label of both accents
    assert boston["accent_raw"].startswith("United States English,Southern New England English (Boston,")
    # a comma inside a listed accent's parentheses does not split it
    assert by_id["common_voice_en_32845011"]["accent"] == "india-and-south-asia-india-pakistan-sri-lanka"
    assert by_id["common_voice_en_32845013"]["accent"] == "scottish-english"


def test_a_sentence_of_two_quote_marks_is_an_empty_transcript(tmp_path):
    imported = import_validate_run("commonvoice", CV11, tmp_path)
    assert "common_voice_en_32845012" not in {r["id"] for r in imported.records}
    assert imported.summary["rejected"] == {"empty transcript": 1}
    (reject,) = imported.rejects
    assert (reject["id"], reject["source"]) == ("common_voice_en_32845012", "test.tsv:4")
    assert "'\"\"'" in reject["detail"]


def test_release_6_1_writes_an_empty_segment_as_two_apostrophes(tmp_path):
    imported = import_validate_run("commonvoice", CV61, tmp_path)
    assert len(imported.records) == 2 and all("segment" not in r for r in imported.records)
    assert "segment" not in imported.summary["tags"]
    assert imported.records[0]["accent"] == "us"


def test_releases_without_a_locale_column_take_the_locale_from_the_folder(tmp_path):
    imported = import_validate_run("commonvoice", CV4_WELSH, tmp_path)
    assert [(r["language"], r["locale"]) for r in imported.records] == [("cy", "cy"), ("cy", "cy")]
    renamed = tmp_path / "welsh clips"
    shutil.copytree(CV4_WELSH, renamed)
    bad = invoke("import", "commonvoice", str(renamed), "-o", str(tmp_path / "bad" / "m.jsonl"))
    assert bad.returncode == 2 and "'welsh clips' is not a locale code" in bad.stderr
    assert "Traceback" not in bad.stderr
