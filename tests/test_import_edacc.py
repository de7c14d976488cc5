"""EdAcc v1.0: Kaldi-style splits over data/*.wav, the stm's ignore marks, linguistic_background.csv."""

from __future__ import annotations

import shutil

from cli import invoke
from importing import FIXTURES, import_validate_run

from harness.data.importers.edacc import columns, strip_tags

DOWNLOAD = FIXTURES / "edacc"  # the folder the archive was unpacked in
RELEASE = DOWNLOAD / "edacc_v1.0"


def test_test_split_imports_validates_and_runs(tmp_path):
    imported = import_validate_run("edacc", DOWNLOAD, tmp_path)
    by_id = {r["id"]: r for r in imported.records}
    assert list(by_id) == [
        "EDACC-C06-000000002",
        "EDACC-C06-000000003",
        "EDACC-C35_P1-000000001",
        "EDACC-C35_P1-000000002",
    ]
    laugh = by_id["EDACC-C06-000000002"]
    assert laugh["audio"].endswith("edacc_v1.0/data/EDACC-C06.wav")
    assert (laugh["text"], laugh["speaker"], laugh["offset"], laugh["duration"]) == (
        "YEAH THAT'S RIGHT",
        "EDACC-C06-B",
        0.1,
        0.1,
    )  # fmt: skip  -- <laugh> stripped
    assert {k: laugh[k] for k in ("accent", "accent_raw", "l1", "l1_raw", "gender", "age", "age_band")} == {
        "accent": "american", "accent_raw": "American", "l1": "english", "l1_raw": "English",
        "gender": "male", "age": "32", "age_band": "30-39",
    }  # fmt: skip
    assert laugh["education"] == "Undergraduate (in progress)"  # a form answer's line break, on one line
    assert laugh["conversation"] == "EDACC-C06" and "untranscribed" not in laugh
    overlap = by_id["EDACC-C06-000000003"]
    assert (overlap["text"], overlap["untranscribed"]) == ("I THINK SO", "overlap")
    assert overlap["ethnicity"] == "White British"
    assert overlap["accent"] == "southern-english-rp-ish" and overlap["accent_raw"] == "Southern English (RP-ish)"
    kenyan = by_id["EDACC-C35_P1-000000001"]
    assert kenyan["audio"].endswith("data/EDACC-C35_P1.wav") and kenyan["speaker"] == "EDACC-C35-A"
    assert (kenyan["accent"], kenyan["l1"], kenyan["conversation"]) == ("kenyan-african", "swahili", "EDACC-C35")
    assert "age" not in kenyan and "age_band" not in kenyan  # year of birth "92": no age guessed
    unlisted = by_id["EDACC-C35_P1-000000002"]  # EDACC-C35-B has no questionnaire row
    assert unlisted["text"] == "I SAID MEANS HELLO" and unlisted["untranscribed"] == "foreign"
    assert {"accent", "l1", "gender", "age"}.isdisjoint(unlisted)

    assert imported.summary["rejected"] == {"no speech": 2, "ignored in scoring": 1}
    assert [(r["id"], r["reason"], r["source"]) for r in imported.rejects] == [
        ("EDACC-C06-000000001", "ignored in scoring", "test/text:1"),
        ("EDACC-C06-000000004", "no speech", "test/text:4"),
        ("EDACC-C35_P1-000000003", "no speech", "test/text:7"),
    ]
    assert imported.rejects[0]["detail"].startswith("test/stm:1 marks it IGNORE_TIME_SEGMENT_IN_SCORING")
    assert imported.summary["speakers"] == 4
    card = (imported.manifest.parent / "dataset.yaml").read_text(encoding="utf-8")
    assert "licence: CC-BY-SA-4.0" in card and "self_reported: true" in card


def test_dev_split_and_options(tmp_path):
    dev = import_validate_run("edacc", RELEASE, tmp_path / "dev", "--split", "dev")
    assert [(r["id"], r["text"], r["speaker"]) for r in dev.records] == [
        ("EDACC-C24-000000001", "SO HOW WAS YOUR WEEKEND", "EDACC-C24-A"),
        ("EDACC-C24-000000002", "IT WAS GREAT", "EDACC-C24-B"),
    ]
    first, second = dev.records
    assert "accent" not in first and first["l1"] == "romanian"  # accent answered "NA": no accent tag
    assert (second["accent"], second["accent_raw"]) == ("latín-american", "Latín American")

    strict = import_validate_run(
        "edacc", RELEASE, tmp_path / "strict", "-O", "untranscribed=reject", "-O", "survey_year=2023"
    )
    assert [r["id"] for r in strict.records] == ["EDACC-C06-000000002", "EDACC-C35_P1-000000001"]
    assert strict.summary["rejected"] == {"no speech": 2, "untranscribed speech": 2, "ignored in scoring": 1}
    assert strict.records[0]["age"] == "33"
    reasons = {r["id"]: r["detail"] for r in strict.rejects if r["reason"] == "untranscribed speech"}
    assert reasons == {
        "EDACC-C06-000000003": "<overlap>: speech the reference leaves out",
        "EDACC-C35_P1-000000002": "<foreign>: speech the reference leaves out",
    }

    named = import_validate_run(
        "edacc", RELEASE, tmp_path / "named", "-O", "l1_column=Do you speak any second languages? "
        "separate them with commas  (e.g., Mandarin,Catalan,French )",
    )  # fmt: skip
    assert named.records[0]["l1_raw"] == "Spanish, Italian"


def test_bad_layouts_fail_with_one_line(tmp_path):
    out = str(tmp_path / "m.jsonl")
    split = invoke("import", "edacc", str(RELEASE), "-o", out, "--split", "train")
    assert split.returncode == 2 and "--split train: edacc splits are test, dev" in split.stderr
    copy = tmp_path / "edacc_v1.0"
    shutil.copytree(RELEASE, copy)
    (copy / "test" / "stm").unlink()
    no_stm = invoke("import", "edacc", str(copy), "-o", out)
    assert no_stm.returncode == 2 and "no test/stm" in no_stm.stderr and "Traceback" not in no_stm.stderr
    assert len(no_stm.stderr.strip().splitlines()) == 1
    (copy / "test" / "stm").write_text("", encoding="utf-8")
    background = copy / "linguistic_background.csv"
    background.write_text("participant,accent\nEDACC-C06-A,Scottish\n", encoding="utf-8")
    no_id = invoke("import", "edacc", str(copy), "-o", out)
    assert no_id.returncode == 2 and "no PARTICIPANT_ID column" in no_id.stderr
    column = invoke("import", "edacc", str(RELEASE), "-o", out, "-O", "l1_column=Mother tongue")
    assert column.returncode == 2 and "-O l1_column=Mother tongue: no such column" in column.stderr


def test_tags_and_headers():
    assert strip_tags("<breath> I SAID <foreign> MEANS <laugh>HELLO") == (
        "I SAID MEANS HELLO", ["breath", "foreign", "laugh"],
    )  # fmt: skip
    assert strip_tags("<no-speech>") == ("", ["no-speech"])
    header = ["Timestamp", "PARTICIPANT_ID", "WHAT’S YOUR   ethnic background? ", "What is your native language?"]
    assert columns(header) == {"participant_id": 1, "ethnicity": 2, "l1": 3}
