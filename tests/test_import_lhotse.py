"""lhotse manifests: the committed L2-ARCTIC recipe output (tests/fixtures/lhotse), and CutSets,
SupervisionSets and RecordingSets written here by lhotse itself, so the importer reads what
lhotse really writes."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from cli import invoke
from conftest import write_tone
from importing import FIXTURES, import_validate_run

from harness.data.importers.lhotse import language_code

RECIPE = FIXTURES / "lhotse"  # the folder the recipe ran in: the manifests' audio paths start here
MANIFESTS = RECIPE / "data" / "manifests"
ROOT = f"audio_root={RECIPE}"


def by_id(records: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in records}


def failed(result) -> str:
    """The one-line error of a command that must exit 2 without a traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_l2arctic_recipe_cuts_import_validate_and_run(tmp_path):
    imported = import_validate_run("lhotse", MANIFESTS, tmp_path, "--split", "read", "-O", ROOT)
    records = by_id(imported.records)
    assert list(records) == ["aba-arctic_a0001", "aba-arctic_a0002", "zhaa-arctic_a0001", "bwc-arctic_a0002"]
    first = records["aba-arctic_a0001"]  # the supervision id, not the cut's "aba-arctic_a0001-0"
    assert first["audio"] == str(RECIPE / "download/l2arctic/ABA/wav/arctic_a0001.wav")
    assert first["text"] == "Author of the danger trail, Philip Steels, etc."
    assert (first["speaker"], first["language"], first["duration"]) == ("aba", "en", 0.3)
    assert "offset" not in first  # the whole file
    assert (first["gender"], first["gender_raw"], first["accent"], first["accent_raw"]) == (
        "male", "M", "arabic", "Arabic",
    )  # fmt: skip
    assert "language_raw" not in first  # "English" is exactly en
    zhaa = records["zhaa-arctic_a0001"]
    assert (zhaa["speaker"], zhaa["gender"], zhaa["gender_raw"]) == ("zhaa", "female", "F")
    assert (records["bwc-arctic_a0002"]["accent"], records["aba-arctic_a0002"]["duration"]) == ("chinese", 0.35)

    assert imported.summary["split"] == "read"
    assert imported.summary["rejected"] == {"missing audio": 1, "empty transcript": 1}
    assert {(r["id"], r["reason"], r["source"]) for r in imported.rejects} == {
        ("zhaa-arctic_a0003", "missing audio", "l2-arctic_cuts_read.jsonl.gz:4"),
        ("bwc-arctic_a0004", "empty transcript", "l2-arctic_cuts_read.jsonl.gz:6"),
    }
    assert imported.summary["speakers"] == 3
    assert imported.summary["tags"]["gender"] == {"male": 3, "female": 1}
    card = (imported.manifest.parent / "dataset.yaml").read_text(encoding="utf-8")
    assert "format: lhotse" in card and "demographic: true" in card and "self_reported: false" in card


def test_l2arctic_supervision_set_and_the_other_split(tmp_path):
    pair = import_validate_run(
        "lhotse", MANIFESTS, tmp_path / "pair", "-O", ROOT,
        "-O", "supervisions=l2-arctic_supervisions_read.jsonl.gz",
        "-O", "recordings=l2-arctic_recordings_read.jsonl.gz",
    )  # fmt: skip
    # the SupervisionSet's own order (the recipe globbed the transcripts), and its lines in the rejects
    assert [r["id"] for r in pair.records] == [
        "aba-arctic_a0002", "aba-arctic_a0001", "zhaa-arctic_a0001", "bwc-arctic_a0002",
    ]  # fmt: skip
    assert {(r["id"], r["reason"], r["source"]) for r in pair.rejects} == {
        ("zhaa-arctic_a0003", "missing audio", "l2-arctic_supervisions_read.jsonl.gz:3"),
        ("bwc-arctic_a0004", "empty transcript", "l2-arctic_supervisions_read.jsonl.gz:5"),
    }
    suitcase = import_validate_run("lhotse", MANIFESTS, tmp_path / "s", "--split", "suitcase", "-O", ROOT)
    assert [(r["id"], r["speaker"], r["duration"], r["accent"]) for r in suitcase.records] == [
        ("suitcase_corpus-aba", "aba", 0.6, "arabic")
    ]
    assert suitcase.records[0]["text"] == "so there is a man and he is walking with a suitcase"


def test_layout_errors_are_one_line(tmp_path):
    out = str(tmp_path / "m.jsonl")
    several = failed(invoke("import", "lhotse", str(MANIFESTS), "-o", out))
    assert "manifests of several sets (l2-arctic_*_read, l2-arctic_*_suitcase)" in several
    assert "--split NAME or -O cuts=NAME" in several
    # lhotse wrote the paths relative to the folder it ran in: the importer says which folder that is
    relative = failed(invoke("import", "lhotse", str(MANIFESTS), "-o", out, "--split", "read"))
    assert "relative audio paths such as download/l2arctic/ABA/wav/arctic_a0001.wav" in relative
    assert f"pass -O audio_root={RECIPE}" in relative
    nothing = failed(invoke("import", "lhotse", str(MANIFESTS), "-o", out, "--split", "test-clean"))
    assert "no *cuts*.jsonl.gz or *supervisions*/*recordings*.jsonl.gz for --split test-clean" in nothing
    missing = failed(invoke("import", "lhotse", str(MANIFESTS), "-o", out, "-O", "cuts=cuts.jsonl.gz"))
    assert "cuts.jsonl.gz: no such file" in missing
    both = failed(invoke("import", "lhotse", str(MANIFESTS), "-o", out, "--split", "read", "-O", "cuts=x.jsonl"))
    assert "--split read: -O names the file already; leave --split out" in both
    half = failed(invoke("import", "lhotse", str(MANIFESTS), "-o", out, "-O", "supervisions=x.jsonl.gz"))
    assert "-O supervisions= and -O recordings= go together" in half
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "x_supervisions_dev.jsonl.gz").write_bytes(
        (MANIFESTS / "l2-arctic_supervisions_read.jsonl.gz").read_bytes()
    )
    assert "no x_recordings_dev.jsonl.gz beside it" in failed(invoke("import", "lhotse", str(lonely), "-o", out))
    unknown = failed(invoke("import", "lhotse", str(MANIFESTS), "-o", out, "-O", "multichannel=sum"))
    assert unknown.startswith("error: import lhotse: -O") and "multichannel" in unknown


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("English", ("en", False)),  # the names lhotse recipes write
        ("Mandarin", ("zh", False)),
        ("tibetan", ("bo", False)),
        ("en", ("en", False)),  # codes pass
        ("yue", ("yue", False)),
        ("en-US", ("en", True)),  # the region is dropped: language_raw keeps it
        ("pt_BR", ("pt", True)),
        ("English-Nigerian", ("en", True)),  # lhotse's earnings22 recipe
        ("Singaporean English", ("en", True)),
        ("Southwestern", ("southwestern", True)),  # a dialect name: no code to map to
        ("", (None, False)),
        (None, (None, False)),
    ],
)
def test_language_names_and_codes(value, code):
    assert language_code(value) == code


# -- manifests written here by lhotse ----------------------------------------------------------------------


@pytest.fixture
def lhotse():
    return pytest.importorskip("lhotse")


def real_manifests(folder: Path):
    """A CutSet over every case the importer tells apart, built with lhotse's own API."""
    from lhotse import AudioSource, CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    audio = folder / "audio"
    (folder / "data").mkdir(parents=True)
    meeting = Recording.from_file(write_tone(audio / "meeting.wav", 2.0))
    call = Recording.from_file(write_tone(audio / "call.wav", 1.0, channels=2))  # one side per channel
    ihm = Recording(  # one headset file per channel, as lhotse's AMI recipe builds them
        id="ihm",
        sources=[
            AudioSource("file", [0], str(write_tone(audio / "ihm-0.wav", 1.0))),
            AudioSource("file", [1], str(write_tone(audio / "ihm-1.wav", 1.0))),
        ],
        sampling_rate=16_000,
        num_samples=16_000,
        duration=1.0,
    )
    remote = Recording("remote", [AudioSource("url", [0], "https://example.org/remote.flac")], 16_000, 16_000, 1.0)
    piped = Recording("piped", [AudioSource("command", [0], "sox remote.sph -t wav -")], 16_000, 16_000, 1.0)
    fast = Recording.from_file(write_tone(audio / "fast.wav", 1.0))
    sup = SupervisionSegment
    supervisions = [
        sup("m1", "meeting", 0.1, 0.5, channel=0, text="The birch canoe slid on the smooth planks.", speaker="spk1",
            language="English", gender="F",
            custom={"age": 23, "accent": "Scottish English", "text": "a custom field named like a manifest field",
                    "native": True, "score": 0.5, "alignment_ref": {"a": 1}, "tiers": ["x", "y"], "empty": ""}),
        sup("m2", "meeting", 0.5, 0.8, channel=0, text="Glue the sheet to the dark blue background.", speaker="spk2",
            language="Singaporean English", gender="male", custom={"dialect": "Colloquial Singapore"}),
        sup("m3", "meeting", 1.4, 0.5, channel=0, text="It's easy to tell the depth of a well.", speaker="spk1",
            language="en-US"),
        sup("m4", "meeting", 1.8, 0.5, channel=0, text="These days a chicken leg is a rare dish.", speaker="spk2"),
        sup("c1", "call", 0.0, 0.5, channel=1, text="Rice is often served in round bowls.", speaker="caller"),
        sup("c2", "call", 0.5, 0.4, channel=[0, 1], text="The juice of lemons makes fine punch.", speaker="both"),
        sup("h1", "ihm", 0.2, 0.5, channel=1, text="The box was thrown beside the parked truck.", speaker="hs1"),
        sup("h2", "ihm", 0.6, 0.3, channel=[0, 1], text="The hogs were fed chopped corn.", speaker="hs0"),
        sup("r1", "remote", 0.0, 0.5, text="Four hours of steady work faced us.", speaker="far"),
        sup("p1", "piped", 0.0, 0.5, text="A large size in stockings is hard to sell.", speaker="far"),
        sup("f1", "fast", 0.0, 0.8, text="The boy was there when the sun rose.", speaker="quick", language="Chinese"),
    ]  # fmt: skip
    recordings = RecordingSet.from_recordings([meeting, call, ihm, remote, piped, fast])
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=SupervisionSet.from_segments(supervisions))
    cuts = CutSet.from_cuts(
        (c.perturb_speed(1.1) if c.recording_id == "fast" else c.with_custom("accent", "Irish"))
        if c.recording_id in ("meeting", "fast")
        else c
        for c in cuts
    )
    return cuts


def test_real_cutset_offsets_channels_sources_and_tags(lhotse, tmp_path):
    cuts = real_manifests(tmp_path / "lh")
    manifests = tmp_path / "lh" / "data"
    cuts.to_file(manifests / "mini_cuts_dev.jsonl.gz")
    imported = import_validate_run("lhotse", manifests, tmp_path / "out")
    records = by_id(imported.records)
    assert list(records) == ["m1", "m2", "m3", "c2", "h1"]
    m1, m2, m3 = records["m1"], records["m2"], records["m3"]
    assert (m1["offset"], m1["duration"], m2["offset"], m2["duration"]) == (0.1, 0.5, 0.5, 0.8)
    assert m1["audio"] == str(tmp_path / "lh/audio/meeting.wav")
    assert (m1["speaker"], m1["language"], m1["gender"], m1["gender_raw"]) == ("spk1", "en", "female", "F")
    # the supervision's custom beats the cut's; scalars are strings, nested values are left out
    assert (m1["accent"], m1["accent_raw"], m1["age"], m1["age_band"]) == (
        "scottish-english", "Scottish English", "23", "20-29",
    )  # fmt: skip
    assert (m1["native"], m1["score"], m1["custom_text"]) == (
        "true",
        "0.5",
        "a custom field named like a manifest field",
    )
    assert m1["text"] == "The birch canoe slid on the smooth planks."
    assert {"alignment_ref", "tiers", "empty", "language_raw"}.isdisjoint(m1)
    assert (m2["language"], m2["language_raw"], m2["gender"], m2["gender_raw"]) == (
        "en", "Singaporean English", "male", "male",
    )  # fmt: skip
    assert (m2["dialect"], m2["dialect_raw"], m2["accent"]) == (
        "colloquial-singapore", "Colloquial Singapore", "irish",  # no accent of its own: the cut's
    )  # fmt: skip
    assert (m3["language"], m3["language_raw"], m3["accent"], m3["offset"]) == ("en", "en-US", "irish", 1.4)
    assert "gender" not in m3 and "age" not in m3
    assert records["c2"]["audio"].endswith("call.wav") and records["c2"]["offset"] == 0.5
    assert records["h1"]["audio"].endswith("ihm-1.wav")  # the headset of channel 1
    assert (records["h1"]["offset"], records["h1"]["duration"]) == (0.2, 0.5)

    assert {r["id"]: (r["reason"], r["source"]) for r in imported.rejects} == {
        "m4": ("outside recording", "mini_cuts_dev.jsonl.gz:1"),
        "c1": ("one channel of a multi-channel file", "mini_cuts_dev.jsonl.gz:2"),
        "h2": ("spans several files", "mini_cuts_dev.jsonl.gz:3"),
        "r1": ("url audio source", "mini_cuts_dev.jsonl.gz:4"),
        "p1": ("command audio source", "mini_cuts_dev.jsonl.gz:5"),
        "f1_sp1.1": ("transformed recording", "mini_cuts_dev.jsonl.gz:6"),
    }
    details = {r["id"]: r["detail"] for r in imported.rejects}
    assert "1.800-2.300 s, the recording is 2.000 s" in details["m4"]
    assert "-O multichannel=mix" in details["c1"] and "2-channel" in details["c1"]
    assert details["f1_sp1.1"].startswith("Speed:")
    assert (
        details["r1"]
        == "https://example.org/remote.flac: only local files are read; download it and point the recording at the file"
    )


def test_options_multichannel_custom_and_language(lhotse, tmp_path):
    cuts = real_manifests(tmp_path / "lh")
    manifests = tmp_path / "lh" / "data"
    cuts.to_file(manifests / "cuts.jsonl")  # uncompressed JSONL reads too
    mixed = import_validate_run(
        "lhotse", manifests, tmp_path / "mix", "-O", "multichannel=mix", "-O", "custom=accent", "-O", "language=fr"
    )
    records = by_id(mixed.records)
    assert records["c1"]["audio"].endswith("call.wav") and records["c1"]["duration"] == 0.5  # both sides, mixed
    assert (records["m1"]["accent"], records["m1"]["accent_raw"], records["m2"]["accent"]) == (
        "scottish-english", "Scottish English", "irish",
    )  # fmt: skip
    assert {"age", "native", "custom_text", "dialect"}.isdisjoint(records["m1"]) and "dialect" not in records["m2"]
    assert records["m1"]["gender"] == "female"  # a supervision field, not custom
    assert (records["c1"]["language"], records["m1"]["language"]) == ("fr", "en")  # the default fills only gaps
    bare = import_validate_run("lhotse", manifests, tmp_path / "bare", "-O", "custom=")
    assert {"accent", "age", "native"}.isdisjoint(by_id(bare.records)["m1"])


def test_repeated_padded_and_mixed_cuts(lhotse, tmp_path):
    cuts = real_manifests(tmp_path / "lh")
    meeting = cuts.filter(lambda c: c.recording_id == "meeting").to_eager()
    trimmed = meeting.trim_to_supervisions(keep_overlapping=True)  # each cut holds its neighbours' overlap too
    call = cuts.filter(lambda c: c.recording_id == "call").to_eager()[0]
    ihm = cuts.filter(lambda c: c.recording_id == "ihm").to_eager()[0]
    padded = call.pad(duration=2.0)  # a MixedCut of the cut and padding
    mixed = ihm.mix(meeting[0], offset_other_by=0.2)  # two recordings mixed: no file holds it
    manifests = tmp_path / "lh" / "data"
    lhotse.CutSet.from_cuts([*trimmed, padded, mixed]).to_file(manifests / "mini_cuts_test.jsonl.gz")
    imported = import_validate_run("lhotse", manifests, tmp_path / "out", "--split", "test", "-O", "multichannel=mix")
    records = by_id(imported.records)
    assert list(records) == ["m1", "m2", "m3", "c1", "c2"]
    # m2 first came inside m1's cut, starting 0.4 s into it: read whole, from its start in the recording
    assert [(records[i]["offset"], records[i]["duration"]) for i in ("m1", "m2", "m3")] == [
        (0.1, 0.5), (0.5, 0.8), (1.4, 0.5),
    ]  # fmt: skip
    assert records["c2"]["offset"] == 0.5  # the padding is not in the file
    reasons = [(r["id"], r["reason"]) for r in imported.rejects]
    repeated = sorted(i for i, reason in reasons if reason == "repeated supervision")
    # once more in a neighbour's trimmed cut each, and m1-m4 again in the mix
    assert repeated == ["m1", "m1", "m2", "m2", "m3", "m3", "m4", "m4"]
    assert reasons.count(("m4", "outside recording")) == 1  # first seen inside m3's cut, rejected once
    assert sorted(i for i, reason in reasons if reason == "mixed cut") == ["h1", "h2"]
    repeat = next(r for r in imported.rejects if r["id"] == "m1" and r["reason"] == "repeated supervision")
    assert repeat["detail"] == "read from mini_cuts_test.jsonl.gz:1 already"


def test_real_supervision_and_recording_sets(lhotse, tmp_path):
    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

    corpus = tmp_path / "corpus"
    write_tone(corpus / "wav" / "a.wav", 1.0)
    write_tone(corpus / "wav" / "b.wav", 1.0)
    # relative_path_depth=2 keeps "wav/a.wav": relative to the manifests' folder, the importer's default
    recordings = RecordingSet.from_recordings(
        Recording.from_file(corpus / "wav" / f"{name}.wav", relative_path_depth=2) for name in "ab"
    )
    supervisions = SupervisionSet.from_segments(
        [
            SupervisionSegment("a-1", "a", 0.25, 0.5, text="Help the woman get back to her feet.", speaker="x",
                               language="Mandarin", custom={"accent": "Beijing"}),
            SupervisionSegment("b-1", "b", 0.0, 1.0, text="A pot of tea helps to pass the evening.", speaker="y",
                               language="yue"),
            SupervisionSegment("c-1", "c", 0.0, 1.0, text="Smoky fires lack flame and heat.", speaker="z"),
        ]
    )  # fmt: skip
    recordings.to_file(corpus / "corpus_recordings_eval.jsonl.gz")
    supervisions.to_file(corpus / "corpus_supervisions_eval.jsonl.gz")
    imported = import_validate_run("lhotse", corpus, tmp_path / "out")
    assert [(r["id"], r["language"], r.get("offset"), r["duration"], r["audio"]) for r in imported.records] == [
        ("a-1", "zh", 0.25, 0.5, str(corpus / "wav" / "a.wav")),
        ("b-1", "yue", None, 1.0, str(corpus / "wav" / "b.wav")),
    ]
    assert imported.records[0]["accent"] == "beijing" and "language_raw" not in imported.records[0]
    assert [(r["id"], r["reason"], r["source"], r["detail"]) for r in imported.rejects] == [
        ("c-1", "unknown recording", "corpus_supervisions_eval.jsonl.gz:3",
         "recording c is not in corpus_recordings_eval.jsonl.gz"),
    ]  # fmt: skip


def test_damaged_files_and_other_lhotse_layouts(lhotse, tmp_path):
    cuts = real_manifests(tmp_path / "lh")
    out = str(tmp_path / "m.jsonl")
    broken = tmp_path / "broken"
    broken.mkdir()
    cuts.to_file(broken / "x_cuts_dev.jsonl.gz")
    whole = (broken / "x_cuts_dev.jsonl.gz").read_bytes()
    (broken / "x_cuts_dev.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    assert "a damaged or truncated gzip file" in failed(invoke("import", "lhotse", str(broken), "-o", out))

    ragged = tmp_path / "ragged"
    ragged.mkdir()
    cuts.subset(first=1).to_file(ragged / "x_cuts_dev.jsonl")
    with (ragged / "x_cuts_dev.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"id": "half a line", "start": 0,\n\n[1, 2]\n')
    imported = import_validate_run("lhotse", ragged, tmp_path / "ragged-out")
    assert [r["id"] for r in imported.records] == ["m1", "m2", "m3"]
    assert [(r["reason"], r["source"], r["detail"][:8]) for r in imported.rejects[1:]] == [
        ("malformed line", "x_cuts_dev.jsonl:2", "not JSON"),  # the blank line 3 is no row
        ("malformed line", "x_cuts_dev.jsonl:4", "a JSON l"),
    ]

    shar = tmp_path / "shar"
    shar.mkdir()
    cuts.subset(first=1).to_shar(shar, fields={"recording": "wav"}, shard_size=10)
    assert sorted(p.name for p in shar.iterdir()) == ["cuts.000000.jsonl.gz", "recording.000000.tar"]
    assert "a Lhotse Shar folder keeps its audio in tar shards" in failed(
        invoke("import", "lhotse", str(shar), "-o", out)
    )

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    cuts.subset(first=1).to_file(legacy / "cuts.json")
    assert "cuts.json is not JSONL; convert it with 'lhotse copy cuts.json NAME.jsonl.gz'" in failed(
        invoke("import", "lhotse", str(legacy), "-o", out)
    )
    with gzip.open(broken / "x_cuts_dev.jsonl.gz", "wb") as handle:
        handle.write(b"\xff\xfe not utf-8\n")
    assert "not UTF-8" in failed(invoke("import", "lhotse", str(broken), "-o", out))


EDACC_RECIPE = FIXTURES / "lhotse-edacc"  # lhotse's prepare_edacc ran here (make_fixture.py)
EDACC_MANIFESTS = EDACC_RECIPE / "data" / "manifests"


def test_edacc_recipe_output_gets_the_edacc_transcript_rules(tmp_path):
    imported = import_validate_run(
        "lhotse", EDACC_MANIFESTS, tmp_path, "--split", "test", "-O", f"audio_root={EDACC_RECIPE}"
    )
    texts = {r["id"]: r["text"] for r in imported.records}
    assert texts == {
        "EDACC-C06-000000002": "YEAH THAT'S RIGHT",  # <LAUGH> is no word
        "EDACC-C06-000000003": "I THINK SO",
        "EDACC-C35_P1-000000001": "THE SMALL PUP GNAWED A HOLE IN THE SOCK",
        "EDACC-C35_P1-000000002": "I SAID MEANS HELLO",
    }
    by_id = {r["id"]: r for r in imported.records}
    assert by_id["EDACC-C06-000000003"]["untranscribed"] == "overlap"
    assert by_id["EDACC-C35_P1-000000002"]["untranscribed"] == "foreign"
    assert by_id["EDACC-C06-000000002"]["accent"] == "american"  # the recipe's questionnaire fields stay tags
    assert {(r["id"], r["reason"]) for r in imported.rejects} == {
        ("EDACC-C06-000000001", "ignored in scoring"),  # the read passage, text IGNORE_TIME_SEGMENT_IN_SCORING
        ("EDACC-C06-000000004", "no speech"),  # <NO-SPEECH>: no reference at all, never an empty one
        ("EDACC-C35_P1-000000003", "no speech"),
    }


def test_edacc_markup_on_the_supervision_pair_and_its_options(tmp_path):
    dev = import_validate_run("lhotse", EDACC_MANIFESTS, tmp_path / "dev", "--split", "dev",
                              "-O", f"audio_root={EDACC_RECIPE}")  # fmt: skip
    assert [r["text"] for r in dev.records] == ["SO HOW WAS YOUR WEEKEND", "IT WAS GREAT"]
    strict = import_validate_run(
        "lhotse", EDACC_MANIFESTS, tmp_path / "strict", "--split", "test", "-O", f"audio_root={EDACC_RECIPE}",
        "-O", "untranscribed=reject",
    )  # fmt: skip
    assert strict.summary["rejected"]["untranscribed speech"] == 2
    raw = import_validate_run(
        "lhotse", EDACC_MANIFESTS, tmp_path / "raw", "--split", "test", "-O", f"audio_root={EDACC_RECIPE}",
        "-O", "markup=none",
    )  # fmt: skip
    assert "IGNORE_TIME_SEGMENT_IN_SCORING" in {r["text"] for r in raw.records}  # what the rules are there for
