"""L2-ARCTIC: one folder per speaker plus the suitcase corpus (tests/fixtures/l2arctic)."""

from __future__ import annotations

import shutil

from cli import invoke
from importing import FIXTURES, import_validate_run

from harness.data.importers.l2arctic import SPEAKERS, readme_speakers

RELEASE = FIXTURES / "l2arctic" / "l2arctic_release_v5.0"


def test_scripted_split_imports_validates_and_runs(tmp_path):
    imported = import_validate_run("l2arctic", RELEASE, tmp_path)
    assert imported.summary["split"] == "scripted"
    by_id = {r["id"]: r for r in imported.records}
    assert list(by_id) == ["ABA_arctic_a0001", "ABA_arctic_b0001", "SKA_arctic_a0001"]
    first = by_id["ABA_arctic_a0001"]
    assert first["audio"].endswith("l2arctic_release_v5.0/ABA/wav/arctic_a0001.wav")
    assert (first["text"], first["speaker"], first["language"]) == (
        "Author of the danger trail, Philip Steels, etc.", "ABA", "en",
    )  # fmt: skip
    assert {k: first[k] for k in ("l1", "accent", "gender", "prompt_set", "annotated")} == {
        "l1": "arabic", "accent": "arabic", "gender": "male", "prompt_set": "arctic_a", "annotated": "yes",
    }  # fmt: skip
    assert "offset" not in first and "duration" not in first
    second = by_id["ABA_arctic_b0001"]
    assert (second["prompt_set"], second["annotated"], second["text"]) == (
        "arctic_b", "no", "The birch canoe slid on the smooth planks.",  # trailing newline dropped
    )  # fmt: skip
    assert by_id["SKA_arctic_a0001"]["gender"] == "female"

    assert imported.summary["rejected"] == {"speaker not in the speaker table": 1, "no transcript file": 1}
    assert [(r["id"], r["reason"], r["source"]) for r in imported.rejects] == [
        ("QQQ_arctic_a0001", "speaker not in the speaker table", "QQQ/transcript/arctic_a0001.txt:1"),
        ("SKA_arctic_a0003", "no transcript file", "SKA/wav/arctic_a0003.wav"),
    ]
    assert imported.summary["speakers"] == 2
    assert "suitcase" not in " ".join(by_id)  # the spontaneous narratives are their own split
    card = (imported.manifest.parent / "dataset.yaml").read_text(encoding="utf-8")
    assert "CC-BY-NC-4.0" in card and "self_reported: false" in card


def test_suitcase_split(tmp_path):
    imported = import_validate_run("l2arctic", RELEASE, tmp_path, "--split", "suitcase")
    assert [(r["id"], r["speaker"], r["l1"], r["gender"], r["annotated"]) for r in imported.records] == [
        ("ABA_suitcase", "ABA", "arabic", "male", "yes"),  # files named by lower-case speaker code
    ]
    assert imported.records[0]["audio"].endswith("suitcase_corpus/wav/aba.wav")
    assert "prompt_set" not in imported.records[0] and not imported.rejects


def test_readme_table_wins_and_the_embedded_table_is_the_fallback(tmp_path):
    copy = tmp_path / "release"
    shutil.copytree(RELEASE, copy)
    readme = copy / "README.md"
    # a release whose README lists QQQ, and says SKA is male: the README is read as shipped
    text = readme.read_text(encoding="utf-8").replace("|SKA|F|Arabic|", "|SKA|M|Arabic|")
    readme.write_text(text.replace("|**Total**|", "|QQQ|F|Vietnamese|1|0|\n|**Total**|"), encoding="utf-8")
    edited = import_validate_run("l2arctic", copy, tmp_path / "edited")
    by_id = {r["id"]: r for r in edited.records}
    assert (by_id["QQQ_arctic_a0001"]["l1"], by_id["QQQ_arctic_a0001"]["gender"]) == ("vietnamese", "female")
    assert by_id["SKA_arctic_a0001"]["gender"] == "male"
    assert edited.summary["rejected"] == {"no transcript file": 1}

    readme.unlink()
    fallback = import_validate_run("l2arctic", copy, tmp_path / "fallback")
    assert {r["id"]: r["gender"] for r in fallback.records} == {
        "ABA_arctic_a0001": "male", "ABA_arctic_b0001": "male", "SKA_arctic_a0001": "female",
    }  # fmt: skip
    assert fallback.summary["rejected"] == {"speaker not in the speaker table": 1, "no transcript file": 1}


def test_the_embedded_table_matches_the_fixture_readme():
    table = readme_speakers((RELEASE / "README.md").read_text(encoding="utf-8"))
    assert table == dict(SPEAKERS) and len(table) == 24
    languages = {native for _, native in SPEAKERS.values()}
    assert languages == {"Arabic", "Chinese", "Hindi", "Korean", "Spanish", "Vietnamese"}
    assert readme_speakers("# no table here\n|a|b|\n|1|2|\n") == {}


def test_bad_layout_is_a_one_line_error(tmp_path):
    out = str(tmp_path / "m.jsonl")
    parent = invoke("import", "l2arctic", str(FIXTURES / "l2arctic"), "-o", out)
    assert parent.returncode == 2 and "Traceback" not in parent.stderr
    assert "no speaker folders here, but" in parent.stderr and "l2arctic_release_v5.0 has them" in parent.stderr
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    for name in ("ABA.zip", "SKA.zip", "suitcase_corpus.zip", "README.md"):
        (zipped / name).write_bytes(b"")
    still = invoke("import", "l2arctic", str(zipped), "-o", out)
    assert still.returncode == 2 and "still zipped (ABA.zip ...); unzip each one in place" in still.stderr
    assert len(still.stderr.strip().splitlines()) == 1
    suitcase = invoke("import", "l2arctic", str(zipped), "-o", out, "--split", "suitcase")
    assert suitcase.returncode == 2 and "suitcase_corpus.zip is still zipped" in suitcase.stderr
    split = invoke("import", "l2arctic", str(RELEASE), "-o", out, "--split", "read")
    assert split.returncode == 2 and "l2arctic splits are scripted, suitcase" in split.stderr
