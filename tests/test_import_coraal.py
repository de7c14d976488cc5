"""CORAAL: per-component folders of metadata, transcripts and WAVs (tests/fixtures/coraal)."""

from __future__ import annotations

import shutil

import pytest
from cli import invoke
from importing import FIXTURES, import_validate_run

from harness.data.importers.coraal import (
    Cleaned,
    Recording,
    clean_content,
    code_tags,
    drop_cut_offs,
    find_untranscribed,
    speaker_role,
    strip_notes,
    unwrap_overlap,
    unwrap_uncertain,
)

CORPUS = FIXTURES / "coraal"
DCB = "DCB/DCB_se1_ag1_f_01_1.txt"
PRV1 = "PRV/PRV_se0_ag1_f_01_1.txt"
PRV2 = "PRV/PRV_se0_ag1_f_01_2.txt"
DEFAULT_REJECTS = {
    ("DCB_se1_ag1_f_01_1-0001", "interviewer turn", f"{DCB}:2"),
    ("DCB_se1_ag1_f_01_1-0002", "no speech after stripping annotations", f"{DCB}:3"),
    ("DCB_se1_ag1_f_01_1-0003", "redacted or unintelligible speech", f"{DCB}:4"),
    ("DCB_se1_ag1_f_01_1-0005", "interviewer turn", f"{DCB}:6"),
    ("DCB_se1_ag1_f_01_1-0006", "redacted or unintelligible speech", f"{DCB}:7"),
    ("DCB_se1_ag1_f_01_1-0008", "no speech after stripping annotations", f"{DCB}:9"),
    ("DCB_se1_ag1_f_01_1-0009", "unparsed annotation", f"{DCB}:10"),
    ("DCB_se1_ag1_f_01_1-0011", "no speech after stripping annotations", f"{DCB}:12"),
    ("PRV_se0_ag1_f_01_1-0001", "interviewer turn", f"{PRV1}:2"),
    ("PRV_se0_ag1_f_01_1-0003", "no speech after stripping annotations", f"{PRV1}:4"),
    ("PRV_se0_ag1_f_01_1-0004", "not an interviewee", f"{PRV1}:5"),
    ("PRV_se0_ag1_f_01_2-0003", "redacted or unintelligible speech", f"{PRV2}:4"),
}


# -- the cleaning rules, on lines written the way CORAAL writes them ---------------------------------------------


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("(pause 0.52)", ""),
        ("and then (pause 1.07) we left", "and then we left"),
        ("<laugh> that boy was crazy <cough>", "that boy was crazy"),
        ("<ts> I don't know <clears throat>", "I don't know"),
        ("we was on the [porch]", "we was on the porch"),
        ("wasn't nothing [els]e to do", "wasn't nothing else to do"),
        ("[<laugh>] we stayed {pause 0.17} out", "we stayed out"),
        ("{pause 0.17}", ""),
        ("[Mm-hm.]", "Mm-hm."),
        ("I was finna wha- what you call it", "I was finna what you call it"),
        ("she - she ain't say nothing", "she she ain't say nothing"),
        ("I just- I just went", "I I just went"),
        ("twenty-two mm-hm uh-huh", "twenty-two mm-hm uh-huh"),
        ("he was /going to/ come", "he was going to come"),
        ("I told /RD-NAME-2/ to go", "I told to go"),
        ("/unintelligible/ and that was that", "and that was that"),
        ("Y'all  was   gonna go", "Y'all was gonna go"),
    ],
)
def test_clean_content_rules(content, text):
    assert clean_content(content).text == text


def test_clean_content_reports_what_it_found():
    assert clean_content("I grew up off /RD-ADDRESS-1/ <laugh>") == Cleaned("I grew up off", ("/RD-ADDRESS-1/",))
    assert clean_content("[we was] always /outside/") == Cleaned("we was always outside", overlap=True, uncertain=True)
    assert clean_content("[<laugh>] yeah") == Cleaned("yeah")  # a sound overlapped, no words did
    assert clean_content("[els]e") == Cleaned("else", overlap=True)
    assert clean_content("[laugh> yeah").leftover == ">"  # a slip in the markup is reported, never guessed at
    assert clean_content("I <laugh").leftover == "<"
    assert clean_content("<laugh> (pause 0.20)") == Cleaned("")


def test_redactions_and_unintelligible_marks_as_typed():
    # the release's own slips: a missing slash, a space after a hyphen, no space before
    assert find_untranscribed("he know /RD-NAME-3.") == ("/RD-NAME-3",)
    assert find_untranscribed("/RD-NAME- 4/ said it") == ("/RD-NAME- 4/",)
    assert find_untranscribed("like/RD-NAME-2/ said") == ("/RD-NAME-2/",)
    assert find_untranscribed("[/RD-NAME-2/-]") == ("/RD-NAME-2/",)
    assert find_untranscribed("/Inaudible/ then /?/ and /???/") == ("/Inaudible/", "/?/", "/???/")
    assert find_untranscribed("third-grade HARD-headed /hard/") == ()
    assert clean_content("yeah [/RD-NAME-2/-]").text == "yeah"
    assert clean_content("he know /RD-NAME-3.").text == "he know ."  # the stray period is the scorer's to drop


def test_each_rule_alone():
    assert strip_notes("so (pause 0.34) <laugh> yeah") == "so     yeah"
    assert unwrap_uncertain("I /think/ so") == ("I  think  so", True)
    assert unwrap_uncertain("no slashes") == ("no slashes", False)
    assert unwrap_overlap("[yeah] I know") == ("yeah I know", True)
    assert unwrap_overlap("[els]e and [ ] so") == ("else and   so", True)
    assert drop_cut_offs("wha- what, tha-, -") == "  what,    "


def test_speaker_roles_and_codes():
    prv = Recording({"PRV_se0_ag1_f_01": {}, "PRV_se0_ag2_m_01": {}}, "PRV_int_01")
    stem = "PRV_se0_ag1_f_01_2"
    assert speaker_role("PRV_se0_ag1_f_01", stem, None) == "interviewee"  # the recording's own speaker
    assert speaker_role("PRV_se0_ag2_m_01", stem, prv) == "interviewee"  # listed for this file
    assert speaker_role("PRV_se0_ag2_m_01", stem, None) == "other"  # no metadata: not known to be one
    assert speaker_role("PRV_int_01", stem, None) == "interviewer"
    assert speaker_role("PRV_misc_01", stem, prv) == "other"
    assert code_tags("DCB_se3_ag2_m_04") == {"gender": "male", "sec_group": "3"}
    assert code_tags("ROC_se0_ag1_f_01") == {"gender": "female"}  # se0: not stratified, no group
    assert code_tags("DCB_int_01") == {}


# -- the importer, end to end --------------------------------------------------------------------------------------


def test_interviewees_import_validate_and_run(tmp_path):
    imported = import_validate_run("coraal", CORPUS, tmp_path)
    by_id = {r["id"]: r for r in imported.records}
    assert list(by_id) == [
        "DCB_se1_ag1_f_01_1-0004",
        "DCB_se1_ag1_f_01_1-0007",
        "DCB_se1_ag1_f_01_1-0010",
        "DCB_se1_ag1_f_01_1-0012",
        "PRV_se0_ag1_f_01_1-0002",
        "PRV_se0_ag1_f_01_1-0005",
        "PRV_se0_ag1_f_01_2-0001",
        "PRV_se0_ag1_f_01_2-0002",
    ]
    dc = by_id["DCB_se1_ag1_f_01_1-0004"]
    assert dc["audio"].endswith("coraal/DCB/DCB_se1_ag1_f_01_1.wav")
    assert (dc["text"], dc["speaker"], dc["offset"], dc["duration"]) == (
        "It was cool, we was always outside", "DCB_se1_ag1_f_01", 0.65, 0.25,
    )  # fmt: skip
    fields = ("id", "audio", "text", "speaker", "language", "offset", "duration")
    assert {k: v for k, v in dc.items() if k not in fields} == {
        "component": "DCB", "region": "washington-dc", "role": "interviewee", "dialect": "aal", "gender": "female",
        "sec_group": "1", "age": "17", "age_band": "10-19", "age_group": "-19", "education": "student-college",
        "interview_year": "2015", "overlap": "yes",
    }  # fmt: skip
    guess = by_id["DCB_se1_ag1_f_01_1-0007"]
    assert guess["text"] == "She was finna what you call it, she was gonna move"  # wha- dropped, /move/ kept
    assert guess["uncertain"] == "yes" and "overlap" not in guess
    prv = by_id["PRV_se0_ag1_f_01_1-0005"]
    assert (prv["text"], prv["region"], prv["age_group"], prv["interview_year"]) == (
        "We ain't have nothing left, mm-hm.", "princeville-nc", "-29", "2004",
    )  # fmt: skip
    # an overlap that begins inside a word is one word; a laugh in brackets is no overlapping speech
    assert (by_id["DCB_se1_ag1_f_01_1-0010"]["text"], by_id["DCB_se1_ag1_f_01_1-0010"]["overlap"]) == (
        "Wasn't nothing else to do", "yes",
    )  # fmt: skip
    braced = by_id["DCB_se1_ag1_f_01_1-0012"]
    assert braced["text"] == "We stayed out there all day" and "overlap" not in braced  # {pause 0.17} is a pause
    assert "sec_group" not in prv  # PRV is se0: not divided by socio-economic group
    assert "offset" not in by_id["PRV_se0_ag1_f_01_2-0001"]  # a segment at 0 s
    cousin = by_id["PRV_se0_ag1_f_01_2-0002"]  # a second interviewee the metadata lists for this file
    assert (cousin["speaker"], cousin["role"], cousin["gender"], cousin["age"], cousin["age_group"]) == (
        "PRV_se0_ag2_m_01", "interviewee", "male", "34", "30 to 50",
    )  # fmt: skip

    assert imported.summary["rejected"] == {
        "interviewer turn": 3,
        "no speech after stripping annotations": 4,
        "redacted or unintelligible speech": 3,
        "unparsed annotation": 1,
        "not an interviewee": 1,
    }
    assert {(r["id"], r["reason"], r["source"]) for r in imported.rejects} == DEFAULT_REJECTS
    detail = {r["id"]: r["detail"] for r in imported.rejects}
    assert detail["DCB_se1_ag1_f_01_1-0003"] == "I grew up in Northeast <laugh> off /RD-ADDRESS-1/"
    assert detail["PRV_se0_ag1_f_01_1-0004"] == "PRV_misc_01: Come here girl"
    assert imported.summary["speakers"] == 3
    assert imported.summary["tags"]["component"] == {"PRV": 4, "DCB": 4}
    card = (imported.manifest.parent / "dataset.yaml").read_text(encoding="utf-8")
    assert "CC BY-NC-SA 4.0" in card and "self_reported: true" not in card and "self_reported: false" in card


def test_all_speakers_with_roles_and_interviewer_tags(tmp_path):
    imported = import_validate_run("coraal", CORPUS, tmp_path, "-O", "speakers=all")
    by_id = {r["id"]: r for r in imported.records}
    assert len(by_id) == 12
    interviewer = by_id["DCB_se1_ag1_f_01_1-0001"]
    assert (interviewer["speaker"], interviewer["role"], interviewer["gender"], interviewer["age_group"]) == (
        "DCB_int_01", "interviewer", "female", "30-35",
    )  # fmt: skip
    assert interviewer["ethnicity"] == "african-american" and "dialect" not in interviewer
    assert by_id["PRV_se0_ag1_f_01_1-0001"]["ethnicity"] == "european-american"
    assert (by_id["DCB_se1_ag1_f_01_1-0005"]["text"], by_id["DCB_se1_ag1_f_01_1-0005"]["overlap"]) == ("Mm-hm.", "yes")
    other = by_id["PRV_se0_ag1_f_01_1-0004"]
    assert (other["role"], other["speaker"]) == ("other", "PRV_misc_01")
    assert {"dialect", "gender", "age"}.isdisjoint(other)
    assert imported.summary["tags"]["role"] == {"interviewee": 8, "interviewer": 3, "other": 1}
    assert "interviewer turn" not in imported.summary["rejected"]


def test_untranscribed_strip_keeps_the_lines_without_the_marks(tmp_path):
    stripped = import_validate_run("coraal", CORPUS, tmp_path / "s", "-O", "untranscribed=strip")
    texts = {r["id"]: r["text"] for r in stripped.records}
    assert texts["DCB_se1_ag1_f_01_1-0003"] == "I grew up in Northeast off"
    assert texts["DCB_se1_ag1_f_01_1-0006"] == "my mama"
    assert texts["PRV_se0_ag1_f_01_2-0003"] == "he know ."
    assert "redacted or unintelligible speech" not in stripped.summary["rejected"]
    assert len(stripped.records) == 11


def test_overlap_and_uncertain_rejects(tmp_path):
    imported = import_validate_run("coraal", CORPUS, tmp_path, "-O", "overlap=reject", "-O", "uncertain=reject")
    assert "DCB_se1_ag1_f_01_1-0004" not in {r["id"] for r in imported.records}
    reasons = {r["id"]: (r["reason"], r["source"]) for r in imported.rejects}
    assert reasons["DCB_se1_ag1_f_01_1-0004"] == ("overlapping speech", f"{DCB}:5")
    assert reasons["DCB_se1_ag1_f_01_1-0007"] == ("uncertain transcription", f"{DCB}:8")
    assert reasons["DCB_se1_ag1_f_01_1-0010"] == ("overlapping speech", f"{DCB}:11")  # [els]e
    assert len(imported.records) == 5  # [<laugh>] overlaps no words: line 12 stays


def test_components_option_and_a_flat_folder(tmp_path):
    only_prv = import_validate_run("coraal", CORPUS, tmp_path / "prv", "-O", "components=prv")
    assert {r["component"] for r in only_prv.records} == {"PRV"} and len(only_prv.records) == 4

    flat = tmp_path / "flat"
    flat.mkdir()
    for path in CORPUS.rglob("*"):
        if path.is_file() and path.name != "README.md":
            shutil.copy(path, flat / path.name)
    imported = import_validate_run("coraal", flat, tmp_path / "f")
    assert len(imported.records) == 8
    assert {(r["id"], r["reason"], r["source"]) for r in imported.rejects} == {
        (uid, reason, source.split("/", 1)[1]) for uid, reason, source in DEFAULT_REJECTS
    }

    # audio unpacked apart from the transcripts (one folder per archive) is found by name
    split = tmp_path / "split"
    for path in flat.iterdir():
        folder = {".wav": "DCB_audio_part01_2018.10.06", ".txt": "DCB_textfiles_2018.10.06"}[path.suffix]
        (split / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, split / folder / path.name)
    assert len(import_validate_run("coraal", split, tmp_path / "p").records) == 8


def test_rows_the_format_alone_can_fault(tmp_path):
    source = tmp_path / "corpus"
    source.mkdir()
    shutil.copy(CORPUS / "DCB" / "DCB_se1_ag1_f_01_1.wav", source)
    (source / "DCB_se1_ag1_f_01_1.txt").write_bytes(
        b"Line\tSpkr\tStTime\tContent\tEnTime\r\n"
        b"1\tDCB_se1_ag1_f_01\t0.1000\tWe went down there\t0.4000\r\n"
        b"2\tDCB_se1_ag1_f_01\t0.4000\ttoo few cells\r\n"
        b"3\tDCB_se1_ag1_f_01\t0.5\tno end time\t\r\n"
        b"4\tDCB_se1_ag1_f_01\t0.6000\tcaf\xe9 au lait\t0.9000\r\n"
        b"\r\n"
        b"5\tDCB_se1_ag1_f_01\t1.0000\tand it rained\t1.0000\t\r\n"
    )
    (source / "DCB_se2_ag2_m_03_1.txt").write_text(
        "Line\tSpkr\tStTime\tContent\tEnTime\n1\tDCB_se2_ag2_m_03\t0\thi\t1\n"
    )
    manifest = tmp_path / "out" / "manifest.jsonl"
    result = invoke("import", "coraal", str(source), "-o", str(manifest), "--json")
    assert result.returncode == 0, result.stderr
    rows = [line for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and '"text": "We went down there"' in rows[0]  # CRLF line ends read cleanly
    rejects = (tmp_path / "out" / "manifest.rejects.jsonl").read_text()
    for reason, where in [
        ("malformed row", "DCB_se1_ag1_f_01_1.txt:3"),
        ("bad timestamps", "DCB_se1_ag1_f_01_1.txt:4"),
        ("not UTF-8", "DCB_se1_ag1_f_01_1.txt:5"),
        ("empty segment", "DCB_se1_ag1_f_01_1.txt:7"),  # the writer's: zero duration
        ("missing audio", "DCB_se2_ag2_m_03_1.txt:2"),  # the writer's: no WAV for that transcript
    ]:
        assert f'"source": "{where}"' in rejects and f'"reason": "{reason}"' in rejects, (reason, rejects)


def test_bad_layouts_are_one_line_errors(tmp_path):
    out = str(tmp_path / "m.jsonl")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "DCB_metadata_2018.10.06.txt").write_text("CORAAL.Sub\tCORAAL.Spkr\tCORAAL.File\n")
    for args, message in [
        ((str(empty),), "no CORAAL transcripts ({COMP}_se*_ag*_*.txt); unpack the {COMP}_textfiles_*.tar.gz"),
        ((str(CORPUS), "-O", "components=ATL"), "no CORAAL transcripts (ATL_se*_ag*_*.txt)"),
        ((str(CORPUS), "-O", "components=DCB,ROC"), "no transcripts for component(s) ROC"),
        ((str(CORPUS), "-O", "components=D.C"), "'D.C' is not a CORAAL component code"),
        ((str(CORPUS), "-O", "speakers=everyone"), "speakers"),
    ]:
        result = invoke("import", "coraal", *args, "-o", out)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr

    headless = tmp_path / "headless"
    headless.mkdir()
    (headless / "PRV_se0_ag1_f_01_1.txt").write_text("Line\tSpeaker\tStart\tText\tEnd\n1\ta\t0\thi\t1\n")
    result = invoke("import", "coraal", str(headless), "-o", out)
    assert result.returncode == 2 and "no 'Spkr' column" in result.stderr and "Traceback" not in result.stderr

    twice = tmp_path / "twice"
    shutil.copytree(CORPUS, twice / "a")
    shutil.copytree(CORPUS / "PRV", twice / "b")
    result = invoke("import", "coraal", str(twice), "-o", out)
    assert result.returncode == 2 and "a second transcript PRV_se0_ag1_f_01_1.txt" in result.stderr
