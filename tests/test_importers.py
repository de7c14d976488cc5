"""The import framework: tag maps, the streaming writer, rejects, the dataset card, plugins, the CLI."""

from __future__ import annotations

import json
import shutil
import signal
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from cli import asrfair, start
from conftest import install_plugin, write_tone
from importing import FIXTURES

from harness.data.importers import ImporterRegistry, parse_options
from harness.data.importers.base import Importer, Record, Reject, age_band, label
from harness.data.importers.tagmap import read_tag_map
from harness.data.importers.writer import import_corpus
from harness.errors import InputError

CV_RELEASE = FIXTURES / "commonvoice" / "cv-corpus-20.0-2024-12-06" / "en"
CV_COLUMNS = "client_id path sentence_id sentence sentence_domain up_votes down_votes age gender accents variant locale"
CV_HEADER = "\t".join([*CV_COLUMNS.split(" "), "segment"])


class Listed(Importer):
    """An importer over a list given in the test: the writer's behaviour, without a corpus format."""

    name = "listed"
    description = "rows given by the test"
    items: ClassVar[list[Record | Reject | BaseException]] = []

    def rows(self) -> Iterator[Record | Reject]:
        for item in self.items:
            if isinstance(item, BaseException):
                raise item
            yield item


def listed(source: Path, *items: Record | Reject | BaseException) -> Listed:
    importer = Listed(source, Listed.Options())
    importer.items = list(items)
    return importer


def test_labels_and_age_bands():
    assert label("  United States English ") == "united-states-english"
    assert label("India and South Asia (India, Pakistan, Sri Lanka)") == "india-and-south-asia-india-pakistan-sri-lanka"
    assert label("Québécois_French") == "québécois-french" and label("—") == ""
    assert [age_band(a) for a in ("23", "27.0", "9", "x", "-1")] == ["20-29", "20-29", "0-9", None, None]


def test_tag_map_matches_loosely_and_applies_the_unmapped_rule(tmp_path):
    path = tmp_path / "tags.yaml"
    path.write_text(
        "accent:\n  map:\n    us: [United States English, 'US-english']\n    uk: England English\n  unmapped: other\n"
        "region:\n  map: {north: [Leeds, york]}\n  unmapped: omit\n"
        "l1:\n  map: {mandarin: [Chinese Mandarin]}\n",
        encoding="utf-8",
    )
    mapping = read_tag_map(path)
    tags, unmapped = mapping.apply(
        {"accent": "united states  ENGLISH", "region": "Bristol", "l1": "Cantonese", "device": "mic1"}
    )
    assert tags == {"accent": "us", "l1": "Cantonese", "device": "mic1"}  # region omitted, l1 kept as it was
    assert unmapped == [("region", "Bristol"), ("l1", "Cantonese")]
    assert mapping.apply({"accent": "us english", "region": "YORK"})[0] == {"accent": "us", "region": "north"}
    assert mapping.apply({"accent": "Welsh English"})[0] == {"accent": "other"}
    assert mapping.apply({"accent": "uk"})[0] == {"accent": "uk"}  # already canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "expected tag names mapping to"),
        ("accent: {us: [x]}\n", "'accent': expected 'map: {canonical: [raw values]}'"),
        ("accent: {map: {us: [x]}, unmaped: keep}\n", "'accent.unmaped': unknown key; did you mean 'unmapped'?"),
        ("accent: {map: {us: [x, 3]}}\n", "'accent.map.us': expected raw values as text"),
        ("accent: {map: {us: [x], uk: [X]}}\n", "'X' is listed under both 'us' and 'uk'; keep one"),
        ("accent: {map: {us: [x]}, unmapped: ''}\n", "'accent.unmapped': expected keep, omit or a label"),
        ("accent: {map: {us: [x]}\n", "bad YAML"),
    ],
)
def test_tag_map_errors_name_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "tags.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=None) as info:
        read_tag_map(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_writer_checks_every_record_and_keeps_every_reject(tmp_path):
    audio = write_tone(tmp_path / "corpus" / "a.wav", seconds=1.0)
    importer = listed(
        tmp_path / "corpus",
        Record("u1", audio, " two\n words ", "s1", {"accent": "x", "empty": ""}, source="list:1"),
        Record("u2", tmp_path / "corpus" / "gone.wav", "text", "s1", source="list:2"),
        Record("u3", audio, "   ", "s2", source="list:3"),
        Record("u4", audio, "seg", "s2", {"accent": "y"}, offset=0.25, duration=0.5, source="list:4"),
        Record("u5", audio, "seg", "s2", duration=0.0, source="list:5"),
        Reject("speaker not in table", "list:6", "u6", "speaker s9"),
    )
    out = tmp_path / "corpus" / "manifest.jsonl"
    summary = import_corpus(importer, out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"id": "u1", "audio": "a.wav", "text": "two words", "speaker": "s1", "language": "en", "accent": "x",
         "empty": ""},
        {"id": "u4", "audio": "a.wav", "text": "seg", "speaker": "s2", "language": "en", "offset": 0.25,
         "duration": 0.5, "accent": "y"},
    ]  # fmt: skip
    assert summary.rejected == {
        "missing audio": 1,
        "empty transcript": 1,
        "empty segment": 1,
        "speaker not in table": 1,
    }
    rejects = [json.loads(line) for line in (tmp_path / "corpus" / "manifest.rejects.jsonl").read_text().splitlines()]
    assert [(r["id"], r["reason"], r["source"]) for r in rejects] == [
        ("u2", "missing audio", "list:2"),
        ("u3", "empty transcript", "list:3"),
        ("u5", "empty segment", "list:5"),
        ("u6", "speaker not in table", "list:6"),
    ]
    assert summary.audio_outside is None and summary.speakers == {"s1", "s2"}
    # a later import without rejects removes the stale default rejects file
    import_corpus(listed(tmp_path / "corpus", Record("u1", audio, "w", "s1", source="list:1")), out)
    assert not (tmp_path / "corpus" / "manifest.rejects.jsonl").exists()


def test_a_failed_or_interrupted_import_leaves_the_previous_manifest(tmp_path):
    audio = write_tone(tmp_path / "corpus" / "a.wav")
    out = tmp_path / "ds" / "manifest.jsonl"
    import_corpus(listed(tmp_path / "corpus", Record("old", audio, "kept", "s", source="l:1")), out)
    before = out.read_bytes()
    for stop in (KeyboardInterrupt(), InputError("x.tsv:3: bad row")):
        with pytest.raises(type(stop)):
            import_corpus(listed(tmp_path / "corpus", Record("new", audio, "w", "s", source="l:1"), stop), out)
        assert out.read_bytes() == before
        assert sorted(p.name for p in out.parent.iterdir()) == ["dataset.yaml", "manifest.jsonl"]  # no temp files


def test_nothing_imported_is_an_error_that_keeps_the_rejects(tmp_path):
    importer = listed(tmp_path, Record("u", tmp_path / "none.wav", "t", "s", source="l:1"))
    with pytest.raises(InputError, match=r"no utterances imported \(1 missing audio\); see .*manifest.rejects.jsonl"):
        import_corpus(importer, tmp_path / "ds" / "manifest.jsonl")
    assert not (tmp_path / "ds" / "manifest.jsonl").exists()
    assert json.loads((tmp_path / "ds" / "manifest.rejects.jsonl").read_text())["reason"] == "missing audio"


def test_a_hand_written_dataset_card_is_kept(tmp_path):
    audio = write_tone(tmp_path / "a.wav")
    card = tmp_path / "ds" / "dataset.yaml"
    card.parent.mkdir()
    card.write_text("name: mine\n", encoding="utf-8")
    summary = import_corpus(listed(tmp_path, Record("u", audio, "t", "s", source="l:1")), card.with_name("m.jsonl"))
    assert summary.card_kept and card.read_text() == "name: mine\n"
    assert summary.audio_outside == tmp_path  # the audio is not under the manifest's folder


def test_import_streams_in_constant_memory(tmp_path):
    """Ten times the rows, the same peak: nothing per utterance is held (speakers and tag values are)."""
    source = tmp_path / "en"
    shutil.copytree(CV_RELEASE / "clips", source / "clips")
    peaks = []
    for rows in (2_000, 20_000):
        lines = (
            f"speaker{i % 50}\tcommon_voice_en_36000001.mp3\ts\tWords of sentence {i}.\t\t2\t0\tthirties\t\t"
            f"Accent {i % 20}\t\ten\t\n"
            for i in range(rows)
        )
        (source / "test.tsv").write_text(CV_HEADER + "\n" + "".join(lines), encoding="utf-8")
        importer = ImporterRegistry.default().create("commonvoice", source, {}, None)
        tracemalloc.start()
        summary = import_corpus(importer, tmp_path / f"out{rows}" / "manifest.jsonl")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert summary.written == rows
    assert peaks[1] < 1.5 * peaks[0], peaks


def test_cli_errors_are_one_line(tmp_path):
    out = str(tmp_path / "m.jsonl")
    cases = [
        (("import", "comonvoice", str(CV_RELEASE), "-o", out), "unknown import format 'comonvoice'; did you mean"),
        (("import", "commonvoice", str(tmp_path / "nope"), "-o", out), "nope: not a folder"),
        (("import", "commonvoice", str(tmp_path), "-o", out), "no test.tsv; pass the folder of a commonvoice release"),
        (("import", "commonvoice", str(CV_RELEASE), "-o", out, "-O", "mics"), "-O mics: expected key=value"),
        (("import", "commonvoice", str(CV_RELEASE), "-o", out, "-O", "x=1"), "'x': unknown key"),
        (("import", "vctk", str(CV_RELEASE), "-o", out, "--split", "test"), "--split test: vctk has no splits"),
        (("import", "commonvoice", str(CV_RELEASE), "-o", out, "--map", str(tmp_path / "t.yaml")), "tag map not found"),
    ]  # fmt: skip
    for args, message in cases:
        result = asrfair(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_options_parse_and_the_listing(tmp_path):
    assert parse_options(["mics=mic1,mic2", " a = b=c "]) == {"mics": "mic1,mic2", "a": "b=c"}
    listing = asrfair("importers", "--json")
    assert listing.returncode == 0, listing.stderr
    formats = {entry["name"]: entry for entry in json.loads(listing.stdout)}
    assert set(formats) >= {
        "commonvoice", "vctk", "l2arctic", "speech-accent-archive", "edacc", "coraal", "kaldi", "lhotse",
    }  # fmt: skip
    assert formats["commonvoice"]["splits"][0] == "test" and "accent_raw" in formats["commonvoice"]["tags"]
    table = asrfair("importers")
    assert "commonvoice: Mozilla Common Voice release" in table.stdout


PLUGIN = '''
from pathlib import Path
from harness.data.importers import Importer, Record


class WordList(Importer):
    """A folder of WAVs and one words.txt: 'file.wav<TAB>transcript' per line."""

    name = "wordlist"
    description = "a test plugin: words.txt beside WAVs"

    def rows(self):
        for line, text in enumerate((self.source / "words.txt").read_text().splitlines(), start=1):
            wav, words = text.split("\\t")
            yield Record(Path(wav).stem, self.source / wav, words, "s", {"device": "phone"}, source=f"words.txt:{line}")
'''


def test_a_plugin_importer_from_an_entry_point(tmp_path):
    plugin = install_plugin(tmp_path / "plugin", "wordlist_import", PLUGIN, "asrfair.importers", "wordlist", "WordList")
    corpus = tmp_path / "corpus"
    write_tone(corpus / "a.wav")
    (corpus / "words.txt").write_text("a.wav\thello there\n", encoding="utf-8")
    result = asrfair(
        "import", "wordlist", str(corpus), "-o", str(corpus / "m.jsonl"), "--json", env={"PYTHONPATH": str(plugin)}
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tags"] == {"device": {"phone": 1}}
    assert json.loads((corpus / "m.jsonl").read_text())["text"] == "hello there"


def test_ctrl_c_mid_import_exits_130_and_keeps_the_old_manifest(tmp_path):
    source = tmp_path / "en"
    shutil.copytree(CV_RELEASE / "clips", source / "clips")
    line = "speaker\tcommon_voice_en_36000001.mp3\ts\tWords.\t\t2\t0\t\t\t\t\ten\t\n"
    (source / "test.tsv").write_text(CV_HEADER + "\n" + line * 400_000, encoding="utf-8")
    out = tmp_path / "ds" / "manifest.jsonl"
    out.parent.mkdir()
    out.write_text("the previous manifest\n", encoding="utf-8")
    proc = start(
        "import", "commonvoice", str(source), "-o", str(out),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a child inherits an ignored SIGINT
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".manifest.jsonl.tmp") for p in out.parent.iterdir()):  # streaming has begun
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "interrupted;" in stderr and "is as it was before the import" in stderr and "Traceback" not in stderr
    assert out.read_text(encoding="utf-8") == "the previous manifest\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["manifest.jsonl"]


def test_an_importer_yielding_a_reserved_field_as_a_tag_is_stopped(tmp_path):
    audio = write_tone(tmp_path / "a.wav")
    out = tmp_path / "ds" / "manifest.jsonl"
    importer = listed(tmp_path, Record("u", audio, "t", "s", {"wer": "0.1"}, source="l:1"))
    with pytest.raises(InputError, match="import format 'listed' yields a tag 'wer', which is a reserved manifest"):
        import_corpus(importer, out)
    assert not out.exists()
