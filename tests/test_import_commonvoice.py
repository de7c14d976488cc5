"""Common Voice: a release's locale folder of TSVs and MP3 clips (tests/fixtures/commonvoice)."""

from __future__ import annotations

import json

from importing import FIXTURES, asrfair, import_validate_run

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
    assert (first["accent"], first["accent_raw"], first["age"], first["gender"], first["locale"]) == (
        "united-states-english", "United States English", "twenties", "male_masculine", "en",
    )  # fmt: skip
    # an empty accents/age/gender cell is no tag, not an empty group
    assert {"accent", "accent_raw", "age", "gender"}.isdisjoint(by_id["common_voice_en_39587123"])
    several = by_id["common_voice_en_40112233"]
    assert (several["accent"], several["accent_raw"]) == ("england-english", "England English|Northern English")
    assert several["age"] == "fourties"  # Common Voice's own spelling, kept
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
    bad = asrfair("import", "commonvoice", str(RELEASE), "-o", str(tmp_path / "m.jsonl"), "--split", "tset")
    assert bad.returncode == 2 and "--split tset: commonvoice splits are test, dev, train" in bad.stderr
    missing = asrfair("import", "commonvoice", str(RELEASE), "-o", str(tmp_path / "m.jsonl"), "--split", "dev")
    assert missing.returncode == 2 and "no dev.tsv" in missing.stderr and "Traceback" not in missing.stderr


def test_map_narrows_free_text_accents_and_lists_the_unmapped(tmp_path):
    imported = import_validate_run(
        "commonvoice", RELEASE, tmp_path, "--map", str(FIXTURES / "commonvoice" / "accents.yaml")
    )
    assert imported.summary["tags"]["accent"] == {"us": 2, "other": 1, "england": 1, "south-asia": 1}
    assert imported.summary["unmapped"] == {"accent": {"canadian-english": 1}}
    assert all(r["accent_raw"] for r in imported.records if "accent" in r)  # the raw text stays beside it
    table = asrfair("import", "commonvoice", str(RELEASE), "-o", str(tmp_path / "t" / "m.jsonl"),
                    "--map", str(FIXTURES / "commonvoice" / "accents.yaml"))  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "accent: 1 values not in the tag map: canadian-english (1)" in table.stdout
    assert "missing audio" in table.stdout and "next: asrfair validate" in table.stderr
    assert json.loads((tmp_path / "t" / "m.rejects.jsonl").read_text().splitlines()[0])["reason"] == "missing audio"
