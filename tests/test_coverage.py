"""``asrfair coverage``: counts per cell on a manifest with known counts, thin and empty cells,
JSONL and CSV alike, the demographic-tag warning, and bad input as one-line errors."""

from __future__ import annotations

import csv
import json

import pytest
from cli import asrfair, assert_clean_error
from conftest import write_jsonl, write_tone

from harness.errors import InputError
from harness.stats.coverage import coverage
from harness.stats.slices import SliceSpec


@pytest.fixture
def corpus(tmp_path):
    """Known counts: north has 6 speakers × 4 utterances on phone and laptop; south 2 speakers × 3
    utterances on phone only (thin); every reference has 5 words, every clip lasts 0.5 s, and one
    utterance of south is a 2 s segment."""
    write_tone(tmp_path / "tone.wav", seconds=0.5)
    write_tone(tmp_path / "long.wav", seconds=4.0)
    records = []
    for s in range(6):
        for n in range(4):
            device = "phone" if n % 2 else "laptop"
            records.append(_record(f"n{s}-{n}", f"north{s}", "north", device))
    for s in range(2):
        for n in range(3):
            records.append(_record(f"s{s}-{n}", f"south{s}", "south", "phone"))
    records[-1] = {**records[-1], "audio": "long.wav", "offset": 1.0, "duration": 2.0}
    return tmp_path, records


def _record(uid, speaker, accent, device):
    return {
        "id": uid,
        "audio": "tone.wav",
        "text": "one two three four five",
        "speaker": speaker,
        "accent": accent,
        "device": device,
    }


def cells(result, name):
    table = next(t for t in result.tables if t.name == name)
    return {c.label: c for c in table.cells}, table


@pytest.mark.parametrize("form", ["jsonl", "csv"])
def test_counts_per_cell_match_the_manifest(corpus, form):
    folder, records = corpus
    path = folder / f"manifest.{form}"
    if form == "jsonl":
        write_jsonl(path, records)
    else:
        columns = sorted({k for r in records for k in r})
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(records)
    result = coverage(path, min_speakers=3, min_words=50)
    assert (result.utterances, result.speakers) == (30, 8)
    assert result.hours == pytest.approx((29 * 0.5 + 2.0) / 3600)
    accent, _ = cells(result, "accent")
    assert (accent["north"].speakers, accent["north"].utterances, accent["north"].words) == (6, 24, 120)
    assert (accent["south"].speakers, accent["south"].utterances, accent["south"].words) == (2, 6, 30)
    assert accent["south"].hours == pytest.approx((5 * 0.5 + 2.0) / 3600)
    assert not accent["north"].thin and accent["south"].reasons == ["speakers<3", "words<50"]
    pair, table = cells(result, "accent × device")
    assert set(pair) == {"north × laptop", "north × phone", "south × phone"}
    assert pair["north × phone"].speakers == 6 and pair["north × phone"].utterances == 12
    assert table.empty == [{"accent": "south", "device": "laptop"}]


def test_slice_file_intersections_and_groups_are_counted(corpus):
    folder, records = corpus
    path = write_jsonl(folder / "manifest.jsonl", records)
    grouped = SliceSpec(by=("accent",), name="everyone", groups={"accent": {"all": ("north", "south")}})
    filtered = SliceSpec(by=("accent", "device"), where={"device": ("phone",)})
    result = coverage(path, slices=[grouped, filtered], min_speakers=1, min_words=1)
    everyone, table = cells(result, "everyone")
    assert table.kind == "slice file" and everyone["all"].utterances == 30 and everyone["all"].speakers == 8
    phone = next(t for t in result.tables if t.kind == "slice file" and t.by == ["accent", "device"])
    assert {c.label: c.utterances for c in phone.cells} == {"north × phone": 12, "south × phone": 6}


def test_without_audio_or_durations_hours_are_unknown_not_zero(corpus):
    folder, records = corpus
    path = write_jsonl(folder / "manifest.jsonl", records)
    result = coverage(path, read_durations=False)
    accent, _ = cells(result, "accent")
    assert result.hours is None and accent["north"].hours is None
    assert accent["south"].hours is None  # one of its clips has a duration, the others do not


def test_a_demographic_tag_must_be_declared_self_reported(corpus):
    folder, records = corpus
    path = write_jsonl(folder / "manifest.jsonl", [{**r, "gender": "f", "l1": "en"} for r in records])
    (warning,) = coverage(path).warnings
    assert "tag 'gender' is demographic" in warning and "self_reported: true" in warning
    (folder / "dataset.yaml").write_text("tags:\n  gender: {self_reported: true}\n  l1: {demographic: true}\n")
    (warning,) = coverage(path).warnings
    assert "tag 'l1' is demographic" in warning  # marked demographic, not declared self-reported
    (folder / "dataset.yaml").write_text("tags:\n  gender: {self_reported: true}\n")
    assert coverage(path).warnings == []


def test_bad_input_is_the_validators_one_line_error(corpus):
    folder, records = corpus
    bad = write_jsonl(folder / "bad.jsonl", [*records[:3], {**records[3], "accent": 7}])
    with pytest.raises(InputError, match=r"bad.jsonl:4: field 'accent' error: tag values must be strings"):
        coverage(bad)
    twice = write_jsonl(folder / "twice.jsonl", [records[0], records[0]])
    with pytest.raises(InputError, match=r"twice.jsonl:2: field 'id' error: duplicate id"):
        coverage(twice)
    blank = write_jsonl(folder / "blank.jsonl", [records[0], {**records[1], "speaker": " "}])
    with pytest.raises(InputError, match=r"blank.jsonl:2: field 'speaker' error"):
        coverage(blank)
    twin = folder / "twin.csv"
    twin.write_text("id,audio,text,accent,accent\na,tone.wav,one two,x,y\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"twin.csv:1: error: duplicate column"):
        coverage(twin)
    path = write_jsonl(folder / "manifest.jsonl", records)
    with pytest.raises(InputError, match=r"--slices: .*'acent'"):
        coverage(path, slices=[SliceSpec(by=("acent",))])


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("null-tag.jsonl", '{"id": "a", "audio": "tone.wav", "text": "hi", "accent": null}\n', "field 'accent'"),
        ("null-duration.jsonl", '{"id": "a", "audio": "tone.wav", "text": "hi", "duration": null}\n', "'duration'"),
        ("bool-offset.jsonl", '{"id": "a", "audio": "tone.wav", "text": "hi", "offset": true}\n', "'offset'"),
        ("huge.jsonl", '{"id": "a", "audio": "tone.wav", "text": "hi", "duration": 1e400}\n', "'duration'"),
        ("inf.csv", "id,audio,text,duration\na,tone.wav,hi,inf\n", "'duration'"),
        ("quote.csv", 'id,audio,text,accent\na,tone.wav,"hi" there,x\n', "bad CSV"),
        ("blank-header.csv", "\nid,audio,text\na,tone.wav,hi\n", "error"),
    ],
)
def test_the_fast_path_never_accepts_what_the_validator_rejects(tmp_path, name, body, message):
    write_tone(tmp_path / "tone.wav")
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        coverage(path)


def test_an_empty_column_is_no_tag_and_a_segment_past_the_end_has_unknown_hours(tmp_path):
    write_tone(tmp_path / "tone.wav", seconds=0.5)
    path = tmp_path / "m.csv"
    path.write_text("id,audio,text,speaker,noise,offset\na,tone.wav,hi there,,,0\nb,tone.wav,yo,,,10\n")
    result = coverage(path, min_speakers=1, min_words=1)
    assert [t.name for t in result.tables] == []  # no tag carries a value (language has one)
    assert result.speakers == 2 and result.hours is None  # b starts after its file ends


def test_cli_coverage_tables_json_markdown_and_errors(corpus, tmp_path):
    folder, records = corpus
    path = write_jsonl(folder / "manifest.jsonl", records)
    shown = asrfair("coverage", str(path), "--min-speakers", "3", "--md", str(tmp_path / "coverage.md"))
    assert shown.returncode == 0, shown.stderr
    assert "30 utterances, 8 speakers" in shown.stdout and "south ⚠" in shown.stdout
    assert "1 empty combinations: south × laptop" in shown.stdout
    markdown = (tmp_path / "coverage.md").read_text()
    assert "## accent × device" in markdown and "| south | — | 2 spk · 30 w ⚠ |" in markdown
    data = json.loads(asrfair("coverage", str(path), "--json").stdout)
    assert data["utterances"] == 30 and {t["name"] for t in data["tables"]} == {"accent", "device", "accent × device"}
    slices = folder / "slices.yaml"
    slices.write_text("version: 1\nslices:\n  - by: [accent, devise]\n")
    assert_clean_error(asrfair("coverage", str(path), "--slices", str(slices)), 2, "devise")
    assert_clean_error(asrfair("coverage", str(folder / "nope.jsonl")), 2, "manifest not found")


def test_the_demo_corpus_is_covered_in_seconds():
    from conftest import DEMO

    result = coverage(DEMO / "manifest.jsonl", min_speakers=3, min_words=100)
    accent, _ = cells(result, "accent")
    assert result.utterances == 240 and result.speakers == 18
    assert {label: c.speakers for label, c in accent.items()} == {
        "american": 3,
        "british": 9,
        "caribbean": 3,
        "scottish": 3,
    }
    assert result.hours is not None and result.hours > 0


def test_pair_tables_that_repeat_a_tag_table_are_left_out_and_named(corpus):
    """``noise`` has one value (accent × noise = accent) and ``voice`` is one per speaker, nested in
    accent (accent × voice = voice): neither pair table is drawn, and the output says which and why,
    and what its rows count."""
    from rich.console import Console

    from harness.report.coverage import print_coverage, render_coverage_markdown

    folder, records = corpus
    path = write_jsonl(folder / "m.jsonl", [{**r, "noise": "clean", "voice": "v-" + r["speaker"]} for r in records])
    result = coverage(path)
    names = [t.name for t in result.tables]
    assert names == ["accent", "device", "noise", "voice", "accent × device", "device × voice"]
    repeated = {(r.name, r.duplicate_of, r.single_valued) for r in result.repeated}
    assert repeated == {
        ("accent × noise", "accent", ("noise",)),
        ("device × noise", "device", ("noise",)),
        ("noise × voice", "voice", ("noise",)),
        ("accent × voice", "voice", ()),
    }
    console = Console(record=True, width=300)
    print_coverage(result, console)
    shown = console.export_text()
    assert "6 tables: one per tag (4) and per pair of tags (2); a row is a cell" in shown
    assert "4 pair tables left out, each the same cells as a one-tag table: accent × noise (= accent; noise" in shown
    assert "accent × voice (= voice)" in render_coverage_markdown(result)
