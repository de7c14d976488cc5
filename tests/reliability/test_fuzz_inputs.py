"""Property tests: bad input to every parser ends in a one-line error or a recorded failure, never a traceback.

Each parser gets hypothesis-generated input that is wrong in every way we could think of (wrong types,
missing fields, unicode oddities, huge numbers, YAML tags and aliases, code in ``where:``, corrupt audio).
The contract under test (harness/errors.py): a user mistake is a ``HarnessError`` whose message is one
line naming the file (and line or field), a manifest's mistakes are ``Problem`` lines, and an audio file
that cannot be decoded is a failed transcript while the run goes on.

Runs are reproducible (``derandomize=True``) and write no ``.hypothesis/`` into the repo (``database=None``,
caches in the temp folder). ``test_zz_example_count`` logs how many examples ran per parser.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import logging
import math
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from cli import asrfair, assert_clean_error
from conftest import REPO, write_tone
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from harness.backends.base import Capabilities
from harness.backends.stub import StubBackend, StubOptions
from harness.conditions import Condition, Simulator
from harness.config import GateConfig, RunConfig, StatsConfig, load_config
from harness.data.audio import SAMPLE_RATE
from harness.data.manifest import (
    DATASET_CARD,
    RESERVED_FIELDS,
    RESULT_COLUMNS,
    Manifest,
    Problem,
    Utterance,
    load_manifest,
    read_manifest,
)
from harness.errors import HarnessError, InputError, one_line
from harness.pipeline import prepare
from harness.stats.slices import check_slices, load_slices, slice_codes, slice_frame
from harness.transcribe.cache import TranscriptCache
from harness.transcribe.local import _prepare, transcribe_all
from harness.yamlfile import read_yaml

# Even with database=None hypothesis caches constants and unicode tables in ./.hypothesis: keep them out of the repo.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "asrfair-hypothesis")
RUN: Counter[str] = Counter()  # examples actually run, per parser (hypothesis may stop early or reject)

log = logging.getLogger(__name__)


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    write_tone(root / "tone.wav", seconds=0.1)
    return root


@contextlib.contextmanager
def workdir(scratch: Path) -> Iterator[Path]:
    """A fresh folder per example (a space in its name, as users' folders have), with a short tone."""
    with tempfile.TemporaryDirectory(dir=scratch, prefix="in put ") as name:
        folder = Path(name)
        shutil.copyfile(scratch / "tone.wav", folder / "tone.wav")
        yield folder


def assert_one_line(message: str, *names: str) -> None:
    """The CLI prints the message as is: one line, saying where the problem is."""
    assert message and len(message.splitlines()) == 1, repr(message)
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"


def assert_names_one(message: str, *candidates: str) -> None:
    assert_one_line(message)
    assert any(c in message for c in candidates), f"none of {candidates!r} in {message!r}"


# ---------------------------------------------------------------------------------------------
# Values: what a hand-edited, exported or hostile file may hold
# ---------------------------------------------------------------------------------------------

ODD_STRINGS = [
    "", " ", "\t", "\x00", "a\x00b", "\n", "a\nb", "\r\n", "\r", "\u2028", "\x85", "\x0b", "\ufeff", "\ufeffid",
    "\u202eevil\u202c", "e\u0301\u0301\u0301", "\U0001f600", "\ud800", "\udc80", "x\udfff", "../../../etc/passwd",
    "..", "/", "/etc/passwd", "C:\\audio.wav", "tone.wav", "./tone.wav", "sub/../tone.wav", "x" * 5000, "NaN",
    "Infinity", "-1", "1e999", "0x10", "1_0", "null", "true", '"', "'", ",", "\\", "{}", "[]", "${HOME}", "%s%n",
    "<b>", "[red]x[/]", "status", "wer", "__slice__",
]  # fmt: skip
TEXT = st.one_of(
    st.sampled_from(ODD_STRINGS),
    st.text(max_size=12),
    st.tuples(st.text(max_size=4), st.sampled_from(ODD_STRINGS)).map("".join),
)
# YAML cannot hold a lone surrogate (yaml.safe_dump refuses it); raw-text tests cover that.
YTEXT = TEXT.map(lambda s: s.encode("utf-8", "replace").decode("utf-8"))
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),
    st.sampled_from([0, -0.0, 5e-324, 1e308, 2**63, 2**64, -1, 10**4000]),
)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
YAML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS.filter(lambda n: not isinstance(n, int) or abs(n) < 10**300), YTEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(YTEXT, inner, max_size=3),
    max_leaves=6,
)


def has_lone_surrogate(value: object) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# ---------------------------------------------------------------------------------------------
# 1. Manifests (JSONL, CSV) and the dataset card
# ---------------------------------------------------------------------------------------------

MANIFEST_FIELDS = st.one_of(
    st.sampled_from([*RESERVED_FIELDS, "accent", "dialect", "device", "noise", *RESULT_COLUMNS[:3], "condition"]),
    TEXT,
)


@st.composite
def records(draw: st.DrawFn) -> dict:
    record = {
        "id": draw(st.sampled_from(["u1", "u2", "u1", "u3"]) | TEXT | JSON_VALUES),
        "audio": draw(st.sampled_from(["tone.wav"] * 4 + ["../tone.wav", "missing.wav", "/etc/passwd"]) | TEXT),
        "text": draw(st.just("the quick brown fox") | TEXT | JSON_VALUES),
    }
    if draw(st.booleans()):
        record["audio"] = draw(JSON_VALUES)
    for key in sorted(draw(st.sets(st.sampled_from(["speaker", "language", "offset", "duration", "accent"])))):
        record[key] = draw(st.one_of(TEXT, NUMBERS, st.sampled_from(["0.05", " 1 ", "-0", "1e-3"]), JSON_VALUES))
    record.update(draw(st.dictionaries(MANIFEST_FIELDS, JSON_VALUES, max_size=3)))
    for key in draw(st.sets(st.sampled_from(["id", "audio", "text"]))):
        record.pop(key, None)
    return record


def line_of(record: object, ascii_only: bool = True) -> str:
    return json.dumps(record, ensure_ascii=ascii_only)


JSONL_LINES = st.one_of(
    records().map(line_of),
    st.tuples(records(), st.booleans()).map(lambda t: line_of(*t)),  # raw (unescaped) unicode
    st.tuples(records().map(line_of), st.integers(0, 80)).map(lambda t: t[0][: t[1]]),  # truncated
    JSON_VALUES.map(line_of),  # valid JSON, not an object
    TEXT,  # not JSON
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),  # nesting past the parser's recursion limit
    st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(['{"id": "u9", "audio": "tone.wav", "text": "t", "offset": ' + "9" * 5000 + "}", "{}", "[]"]),
)


@st.composite
def jsonl_documents(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(JSONL_LINES, max_size=6))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r", "\u2028"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    if draw(st.booleans()):
        text = "\ufeff" + text
    data = text.encode("utf-8", "surrogatepass")  # raw surrogates make invalid UTF-8, as broken exporters do
    return mutate(draw, data)


def mutate(draw: st.DrawFn, data: bytes) -> bytes:
    """Byte-level damage: insertions, overwrites and a cut, anywhere."""
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        chunk = draw(st.binary(max_size=4) | st.sampled_from([b"\xff", b"\xc3", b"\x00", b'"', b"\n", b"\r", b","]))
        cut = draw(st.integers(0, 3))
        data = data[:at] + chunk + data[at + cut :]
    return data


@st.composite
def csv_documents(draw: st.DrawFn) -> bytes:
    cells = st.sampled_from(["u1", "u2", "tone.wav", "hello there", "1.5", "-1", "nan", "inf", "", '"', "a,b"]) | TEXT
    header = draw(st.lists(st.sampled_from(["id", "audio", "text", "speaker", "offset", "accent", "wer", ""]) | TEXT))
    rows = draw(st.lists(st.lists(cells, max_size=8), max_size=5))
    out = io.StringIO()
    writer = csv.writer(
        out,
        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE])),
        escapechar="\\",
        lineterminator=draw(st.sampled_from(["\r\n", "\n", "\r"])),
        delimiter=draw(st.sampled_from([",", ",", ";", "\t"])),
    )
    try:
        writer.writerows(([header] if draw(st.booleans()) else []) + rows)
    except csv.Error:
        assume(False)
    text = out.getvalue()
    if draw(st.booleans()):
        text = "\ufeff" + text
    return mutate(draw, text.encode("utf-8", "surrogatepass"))


def check_manifest(path: Path, check_audio: bool) -> Manifest:
    """``read_manifest`` reports, ``load_manifest`` raises one InputError; neither throws anything else."""
    manifest = read_manifest(path, check_audio=check_audio)
    lines = len(path.read_bytes().decode("utf-8", "replace").splitlines()) + 1
    for problem in manifest.problems:
        check_problem(problem, path, lines)
    try:
        load_manifest(path, check_audio=check_audio)
    except InputError as exc:
        assert manifest.errors
        assert_one_line(str(exc), str(path))
    else:
        assert not manifest.errors
    return manifest


def check_problem(problem: Problem, path: Path, lines: int) -> None:
    text = str(problem)
    assert_one_line(text, str(path))
    assert problem.file == path and problem.level in ("error", "warning") and problem.message
    assert 0 <= problem.line <= lines, (problem, lines)
    if problem.line:
        assert f"{path}:{problem.line}:" in text
    if problem.field:
        assert f"field '{one_line(problem.field)}'" in text


@fuzz(2000)
@given(data=jsonl_documents(), check_audio=st.booleans(), suffix=st.sampled_from([".jsonl", ".JSONL", ".json", ""]))
def test_jsonl_manifest_never_throws(scratch, data, check_audio, suffix):
    RUN["manifest (JSONL)"] += 1
    with workdir(scratch) as folder:
        path = folder / f"manifest{suffix}"
        path.write_bytes(data)
        check_manifest(path, check_audio)


@fuzz(1200)
@given(data=csv_documents(), check_audio=st.booleans())
def test_csv_manifest_never_throws(scratch, data, check_audio):
    RUN["manifest (CSV)"] += 1
    with workdir(scratch) as folder:
        path = folder / "manifest.csv"
        path.write_bytes(data)
        check_manifest(path, check_audio)


@fuzz(600)
@given(data=st.binary(max_size=600), suffix=st.sampled_from([".jsonl", ".csv"]))
def test_random_bytes_manifest_never_throws(scratch, data, suffix):
    RUN["manifest (bytes)"] += 1
    with workdir(scratch) as folder:
        path = folder / f"manifest{suffix}"
        path.write_bytes(data)
        check_manifest(path, check_audio=True)


def seconds_ok(value: object, positive: bool) -> bool:
    """The manifest's documented rule for offset and duration: a finite number of seconds."""
    if isinstance(value, bool):
        return False
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False
    return math.isfinite(number) and (number > 0 if positive else number >= 0)


def faulty_fields(record: dict) -> set[str]:
    """Fields of ``record`` the manifest's rules reject; each must get an error naming it."""
    blank = lambda v: not isinstance(v, str) or not v.strip()  # noqa: E731
    bad = {f for f in ("id", "audio", "text") if f not in record}
    bad |= {f for f in ("id", "audio", "text", "language") if f in record and blank(record[f])}
    if isinstance(record.get("audio"), str) and "\x00" in record["audio"]:
        bad.add("audio")
    if record.get("speaker") is not None and blank(record["speaker"]):
        bad.add("speaker")
    bad |= {f for f in ("offset", "duration") if f in record and not seconds_ok(record[f], f == "duration")}
    for key, value in record.items():
        if key not in RESERVED_FIELDS and (key in RESULT_COLUMNS or not isinstance(value, str)):
            bad.add(key)
    return bad


@pytest.mark.slow  # hypothesis, many manifests
@fuzz(1200)
@given(rows=st.lists(records(), min_size=1, max_size=5), blank_lines=st.lists(st.booleans(), max_size=5))
def test_jsonl_record_problems_name_line_and_field(scratch, rows, blank_lines):
    """An oracle beside the no-crash check: every rule a record breaks is reported on its line, for its
    field; a record that breaks none becomes an utterance with its tags."""
    RUN["manifest (records)"] += 1
    with workdir(scratch) as folder:
        path = folder / "manifest.jsonl"
        lines, where = [], []
        for row, blank in itertools.zip_longest(rows, blank_lines):
            if blank:
                lines.append("  ")
            if row is not None:
                lines.append(line_of(row))
                where.append(len(lines))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        manifest = check_manifest(path, check_audio=False)
        errors: dict[int, set[str | None]] = {}
        for p in manifest.errors:
            errors.setdefault(p.line, set()).add(p.field)
        by_id = {u.id: u for u in manifest.utterances}
        seen: set[str] = set()
        for row, line in zip(rows, where, strict=True):
            if has_lone_surrogate(row):  # the whole record is refused, naming the first such field
                assert len(errors.get(line, ())) == 1, (row, errors.get(line))
                continue
            expected = faulty_fields(row)
            duplicate = isinstance(row.get("id"), str) and row["id"] in seen
            if isinstance(row.get("id"), str):
                seen.add(row["id"])
            assert expected <= errors.get(line, set()), (row, expected, errors.get(line))
            if duplicate:
                assert "id" in errors.get(line, set())
            elif not expected and row["audio"] == "tone.wav":
                assert line not in errors, (row, manifest.errors)
                utt = by_id[row["id"]]
                assert utt.text == row["text"] and utt.audio == (folder / "tone.wav").resolve()
                assert dict(utt.tags) == {k: v for k, v in row.items() if k not in RESERVED_FIELDS}
                assert utt.offset == float(row.get("offset", 0))


VOCAB_SPECS = st.one_of(
    st.dictionaries(
        st.sampled_from(["accent", "dialect", "noise"]) | YTEXT,
        st.one_of(st.fixed_dictionaries({"values": YAML_VALUES}), YAML_VALUES, st.lists(YTEXT, max_size=3)),
        max_size=3,
    ),
    YAML_VALUES,
)
RAW_CARDS = st.sampled_from(
    [
        "",
        "tags:\n  accent: {values: [a, b]\n",
        "tags: &t {accent: {values: *t}}\n",
        "tags: !!python/object/apply:os.system ['touch PWNED']\n",
        "tags:\n\taccent: x\n",
        "tags: {accent: {values: [a\x00]}}\n",
        "tags: {accent: {values: [2001-13-01]}}\n",
        "tags: {accent: {values: [" + "[" * 600 + "]" * 600 + "]}}\n",  # past the recursion limit
        "---\ntags: {}\n---\ntags: {}\n",
        'tags: {accent: {values: ["\\ud800"]}}\n',
    ]
)


@fuzz(700)
@given(
    card=st.one_of(VOCAB_SPECS.map(lambda t: yaml.safe_dump({"tags": t})), YAML_VALUES.map(yaml.safe_dump), RAW_CARDS),
    accent=st.sampled_from(["a", "b", "scottish"]) | YTEXT,
)
def test_dataset_card_vocabulary_never_throws(scratch, card, accent):
    RUN["dataset card"] += 1
    with workdir(scratch) as folder, contextlib.chdir(folder):
        (folder / DATASET_CARD).write_text(card, encoding="utf-8")
        path = folder / "manifest.jsonl"
        row = {"id": "u1", "audio": "tone.wav", "text": "hi", "speaker": "s", "accent": accent}
        path.write_text(line_of(row) + "\n", encoding="utf-8")
        try:
            manifest = check_manifest(path, check_audio=False)
        except InputError as exc:
            assert_one_line(str(exc), str(folder / DATASET_CARD))
        else:
            declared = read_yaml(folder / DATASET_CARD, "dataset card")  # the card as the harness reads it
            tags = declared.get("tags") if isinstance(declared, dict) else None
            spec = tags.get("accent") if isinstance(tags, dict) else None
            values = spec.get("values") if isinstance(spec, dict) else spec
            if isinstance(values, list) and accent not in {str(v) for v in values}:
                assert any(p.field == "accent" for p in manifest.errors), manifest.problems
        assert not (folder / "PWNED").exists()


# ---------------------------------------------------------------------------------------------
# 2. Run configs
# ---------------------------------------------------------------------------------------------

GOOD_ROWS = [
    {"id": f"u{i}", "audio": "tone.wav", "text": "the quick brown fox", "speaker": f"s{i % 2}", "accent": a, "snr": n}
    for i, (a, n) in enumerate([("a", "5"), ("b", "10"), ("a", "20"), ("b", "x")])
]
TRANSFORM_TYPES = ["noise", "babble", "tone", "telephone", "bandpass", "lowpass", "highpass", "clip", "gain"]
TRANSFORM_TYPES += ["reverb", "codec", "nope"]
TRANSFORM_KEYS = ["snr_db", "color", "file", "talkers", "freq_hz", "low_hz", "high_hz", "mu_law", "cutoff_hz"]
TRANSFORM_KEYS += ["percentile", "db", "rt60_s", "format", "bitrate_kbps", "extra"]
TRANSFORM_VALUES = st.one_of(
    st.sampled_from([10, 3000, 1e9, -5, 0, "white", "mp3", "opus", "noise.wav", "tone.wav", "missing.wav", True]),
    YAML_VALUES,
)
TRANSFORMS = st.fixed_dictionaries(
    {"type": st.sampled_from(TRANSFORM_TYPES) | YAML_VALUES},
    optional={k: TRANSFORM_VALUES for k in TRANSFORM_KEYS},
)
CONDITIONS = st.fixed_dictionaries(
    {"name": st.sampled_from(["clean", "noisy", "clean", "bad name", ""]) | YTEXT},
    optional={"transforms": st.lists(TRANSFORMS, max_size=2) | YAML_VALUES, "extra": YAML_VALUES},
)
WHERE_SOURCES = st.deferred(lambda: where_expressions())
SLICE_SPECS = st.fixed_dictionaries(
    {"by": st.sampled_from(["accent", "snr", "nope", "language"]) | st.lists(st.sampled_from(["accent", "snr"]))},
    optional={
        "name": YTEXT | YAML_VALUES,
        "where": WHERE_SOURCES | st.dictionaries(st.sampled_from(["accent", "snr"]) | YTEXT, YAML_VALUES, max_size=2),
        "groups": st.dictionaries(
            st.sampled_from(["accent", "snr"]) | YTEXT,
            st.dictionaries(YTEXT, st.lists(st.sampled_from(["a", "b", "5"]) | YTEXT, max_size=3) | YAML_VALUES),
            max_size=2,
        ),
        "bins": st.dictionaries(
            st.sampled_from(["snr", "accent"]),
            st.lists(st.floats() | st.integers() | st.sampled_from([0, 10, 20]), max_size=4) | YAML_VALUES,
            max_size=2,
        ),
        "reference": st.sampled_from(["a", "b", "[0, 10)", "nope"]) | YAML_VALUES,
        "extra": YAML_VALUES,
    },
)
CONFIG_VALUES = {
    "version": st.sampled_from([1, 2, 0, "1"]),
    "name": st.sampled_from(["fuzz", "a b", "-x", "x" * 300, "名前"]),
    "dataset": st.sampled_from(["manifest.jsonl", "missing.jsonl", "../manifest.jsonl", "a\x00b", "\ud800", "."]),
    "audio_roots": st.lists(st.sampled_from([".", "..", "/", "a\x00b", "\udc80"]), max_size=2),
    "backend": st.fixed_dictionaries(
        {"name": st.sampled_from(["stub", "stub", "nope", "faster-whisper", ""]) | YTEXT},
        optional={
            k: YAML_VALUES | st.sampled_from([0.1, {"accent": {"a": 0.5}}, {"accent": {"a": 2}}, [], -1])
            for k in ["default_rate", "error_rates", "failure_rates", "mix", "seed", "rewrites", "error_rules", "x"]
        },
    ),
    "normalizer": st.sampled_from(["whisper-english", "none", "nope", "norm.yaml", "missing.yml", "a\x00.yaml"]),
    "slices": st.sampled_from(["slices.yaml", "missing.yaml", "a\x00b"]) | st.lists(SLICE_SPECS, max_size=2),
    "conditions": st.lists(CONDITIONS, max_size=3),
    "seed": NUMBERS.filter(lambda n: not isinstance(n, int) or abs(n) < 10**300),
    "stats": st.dictionaries(st.sampled_from([*StatsConfig.model_fields, "nope", "a\nb"]), YAML_VALUES, max_size=4),
    "gate": st.dictionaries(st.sampled_from([*GateConfig.model_fields, "nope"]), YAML_VALUES, max_size=3),
    "max_failure_rate": st.sampled_from([0.5, -1, 2, "x", float("nan")]),
    "output": st.sampled_from(["runs", "out\x00put", "\ud800", "/dev/null/x"]),
    "cache": st.sampled_from(["cache.sqlite", "tone.wav", "c\x00"]),
    "history": st.sampled_from(["h.duckdb", "h\x00"]),
}


@st.composite
def config_mappings(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 19)) == 0:
        return draw(YAML_VALUES)  # not a mapping at all
    config: dict = {"version": 1, "name": "fuzz", "dataset": "manifest.jsonl", "backend": {"name": "stub"}}
    config["stats"] = {"min_speakers": 1, "min_words": 1, "bootstrap": 0, "permutations": 0}
    for key in sorted(draw(st.sets(st.sampled_from(sorted(CONFIG_VALUES)), max_size=4))):
        config[key] = draw(
            st.one_of(CONFIG_VALUES[key], YAML_VALUES) if draw(st.integers(0, 3)) == 0 else CONFIG_VALUES[key]
        )
    config.update(draw(st.dictionaries(YTEXT, YAML_VALUES, max_size=1)))  # unknown keys
    for key in draw(st.sets(st.sampled_from(["name", "dataset", "backend"]), max_size=1)):
        config.pop(key, None)
    return config


def dump_yaml(value: object) -> str:
    try:
        return yaml.safe_dump(value, allow_unicode=True)
    except yaml.YAMLError:  # a lone surrogate: YAML cannot say it; covered by the raw-text tests
        assume(False)
        raise


def write_run_inputs(folder: Path) -> None:
    (folder / "manifest.jsonl").write_text("".join(line_of(r) + "\n" for r in GOOD_ROWS), encoding="utf-8")
    (folder / "slices.yaml").write_text("slices:\n  - by: accent\n", encoding="utf-8")
    (folder / "norm.yaml").write_text("nope: 1\n", encoding="utf-8")
    write_tone(folder / "noise.wav", seconds=0.05)


def check_config(scratch: Path, path: Path) -> None:
    """``load_config`` then ``prepare`` (what ``asrfair run`` does before transcribing): success, or one
    HarnessError line naming the config file (or, from prepare, the file at fault or the config key)."""
    try:
        config = load_config(path)
    except InputError as exc:
        assert_one_line(str(exc), str(path))
        return
    assert isinstance(config, RunConfig)
    json.dumps(config.resolved())  # what the run directory records
    try:
        prepare(config)
    except HarnessError as exc:
        assert_names_one(str(exc), str(scratch), "config '", "backend '")


@fuzz(1000)
@given(config=config_mappings())
def test_config_mapping_never_throws(scratch, config):
    RUN["run config (mapping)"] += 1
    text = dump_yaml(config)
    with workdir(scratch) as folder, contextlib.chdir(folder):
        write_run_inputs(folder)
        path = folder / "run.yaml"
        path.write_text(text, encoding="utf-8")
        check_config(scratch, path)
        assert not (folder / "PWNED").exists()


YAML_SNIPPETS = [
    "", "~", "null", "42", "[1, 2]", "- a\n- b\n", "'just a string'", "name: [unclosed", "name: {a: 1", "a: b: c",
    "\tname: x", "name: x\n\tdataset: y", "name: &a x\ndataset: *a\n", "name: *undefined\n",
    "base: &b {name: stub}\nbackend: *b\n", "<<: {name: x}\n", "<<: *nope\n", "<<: [1, 2]\n",
    "!!python/object/apply:os.system ['touch PWNED']\n", "name: !!python/object/apply:os.system ['touch PWNED']\n",
    "name: !!python/name:os.system\n", "backend: !!python/object:harness.backends.stub.StubBackend {}\n",
    "name: !!binary aGVsbG8=\n", "backend: {name: stub, seed: !!binary '@@@'}\n", "name: !!set {a, b}\n",
    "name: !!omap [a: 1]\n", "name: !custom x\n", "seed: 2001-13-01\n", "seed: 2001-02-29\n", "seed: !!int abc\n",
    "seed: !!float x\n", "seed: !!bool maybe\n", "seed: 0x" + "f" * 5000 + "\n", "seed: " + "9" * 5000 + "\n",
    "seed: 1e99999\n", "seed: .nan\n", "seed: -.inf\n", "seed: 190:20:30\n", "seed: !!timestamp [1]\n",
    "%YAML 1.1\n---\nname: x\n", "%YAML 9.9\n---\nname: x\n", "%TAG ! tag:x,2000:\n---\nname: !a x\n",
    "---\nname: a\n---\nname: b\n", "name: a\n...\nname: b\n", "? [a, b]\n: c\n", "? {a: 1}\n: c\n",
    "name: a\nname: b\n", "name: " + "[" * 600 + "]" * 600 + "\n", "name: " + "{a: " * 300 + "1" + "}" * 300 + "\n",
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nbackend: {name: stub, x: [*c, *c, *c, *c, *c, *c, *c, *c]}\n",
    "stats: &s {a: *s}\n", 'name: "\\x00"\n', 'dataset: "\\ud800"\n', 'output: "\\udc80x"\n', 'name: "\\U0010FFFF"\n',
    "name: a\x00b\n", "name: a\x85b\n", "name: a\u2028b\n", "name: '\x07'\n", "\ufeffname: x\n",
    "name: x\r\ndataset: y\r\n", "name: x\rdataset: y\r", "name: |\n  a\n b\n", "name: >-\n", "name: 'unterminated\n",
    'name: "bad \\q escape"\n', "name: @reserved\n", "name: `tick\n", "- - - - -\n", ": x\n", "? \n",
    "stats: {bootstrap: 1000000000000}\n", "stats: {seed: -1}\n", "gate: {flips: 99999999999999}\n",
    "conditions: [{name: c, transforms: [{type: noise, snr_db: 5, file: \"a\\nb\"}]}]\n",
    "conditions: [{name: c, transforms: [{type: noise, snr_db: 5, file: \"a\\0b\"}]}]\n",
    "conditions: [{name: c, transforms: [{type: tone, snr_db: 5, freq_hz: .inf}]}]\n",
    "slices: [{by: snr, bins: {snr: [.nan, 3]}}]\n", "slices: [{by: snr, bins: {snr: [-.inf, 10, .inf]}}]\n",
    "slices: [{by: accent, where: \"__import__('os').system('touch PWNED')\"}]\n",
    "stats: {\"a\\nb\": 1}\n", "output: \"o\\0\"\n", "normalizer: \"\\0.yaml\"\n",
]  # fmt: skip
BASE_CONFIG = "version: 1\nname: fuzz\ndataset: manifest.jsonl\nbackend: {name: stub}\nstats: {bootstrap: 0}\n"


@st.composite
def raw_configs(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(st.sampled_from(YAML_SNIPPETS) | YTEXT, min_size=1, max_size=3))
    text = (BASE_CONFIG if draw(st.booleans()) else "") + "\n".join(parts)
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 4)) == 0:
        data = mutate(draw, data)
    return data


@fuzz(1300)
@given(data=raw_configs() | st.binary(max_size=200))
def test_config_yaml_oddities_never_throw(scratch, data):
    RUN["run config (raw YAML)"] += 1
    with workdir(scratch) as folder, contextlib.chdir(folder):
        write_run_inputs(folder)
        path = folder / "run.yaml"
        path.write_bytes(data)
        check_config(scratch, path)
        assert not (folder / "PWNED").exists() and not (REPO / "PWNED").exists()


# ---------------------------------------------------------------------------------------------
# 3. Slice files and where: expressions
# ---------------------------------------------------------------------------------------------

INJECTIONS = [
    "__import__('os').system('touch PWNED')",
    "accent == __import__('os').system('touch PWNED')",
    "accent in [__import__('os').system('touch PWNED')]",
    "open('PWNED', 'w').write('x')",
    "accent == open('PWNED', 'w').name",
    "accent.__class__.__mro__[1].__subclasses__()",
    "().__class__.__bases__[0].__subclasses__()",
    "(lambda: __import__('os').system('touch PWNED'))()",
    "accent == (lambda: 1)()",
    "f\"{__import__('os').system('touch PWNED')}\"",
    "accent == f\"{__import__('os').system('touch PWNED')}\"",
    "[__import__('os').system('touch PWNED') for x in 'a']",
    "accent == [x for x in 'a']",
    "(x := __import__('os'))",
    "exec('import os; os.system(\"touch PWNED\")')",
    "eval('1')",
    "getattr(accent, 'upper')",
    "accent == globals()",
    "accent if __import__('os').system('touch PWNED') else accent",
    "accent == 'a' or __import__('os').system('touch PWNED')",
    "not __import__('os').system('touch PWNED')",
    "accent[0] == 'a'",
    "accent.upper() == 'A'",
    "accent + 'x' == 'ax'",
    "accent == 1 + 1",
    "accent == -1",
    "accent == b'x'",
    "accent == ...",
    "accent == None",
    "accent == True",
    "accent is 'a'",
    "'a' == accent",
    "accent == snr",
    "1 < snr < 10",
    "accent in {'a', 'b'}",
    "accent in ('a', x)",
    "accent in 'abc'",
    "yield accent",
    "await accent",
    "*accent",
    "accent; import os",
    "accent == 'a'\nimport os",
    "accent == '\x00'",
    "\x00",
    "(" * 300 + "accent == 'a'" + ")" * 300,
    "not " * 200 + "accent == 'a'",
    "not " * 3000 + "accent == 'a'",
    " and ".join(["accent == 'a'"] * 3000),
]
WHERE_CONSTANTS = st.one_of(
    st.sampled_from(["'a'", "'b'", "'scottish'", "5", "10", "-3.5", "1e400", "10**100", "0x10", "1_000", "''"]),
    st.text(max_size=6).map(repr),
    st.integers().map(str),
    st.floats().map(repr),
)
WHERE_OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "<>", "=", "is", "is not", "==="])


@st.composite
def where_expressions(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.integers(0, 6 if depth < 3 else 2))
    tag = draw(
        st.sampled_from(["accent", "snr", "nope", "language"]) | st.from_regex(r"[A-Za-z_]\w{0,6}", fullmatch=True)
    )
    if kind <= 1:
        expression = f"{tag} {draw(WHERE_OPS)} {draw(WHERE_CONSTANTS)}"
    elif kind == 2:
        items = ", ".join(draw(st.lists(WHERE_CONSTANTS, max_size=3)))
        expression = draw(st.sampled_from([f"{tag} in [{items}]", f"{tag} not in ({items},)", f"{tag} in [{items}"]))
    elif kind == 3:
        expression = f"not {draw(where_expressions(depth + 1))}"
    elif kind == 4:
        expression = f"({draw(where_expressions(depth + 1))})"
    else:
        joiner = draw(st.sampled_from([" and ", " or ", " & ", " | ", " ", ", "]))
        expression = draw(where_expressions(depth + 1)) + joiner + draw(where_expressions(depth + 1))
    if depth == 0 and draw(st.integers(0, 5)) == 0:  # splice in a hostile fragment
        at = draw(st.integers(0, len(expression)))
        expression = expression[:at] + draw(st.sampled_from(INJECTIONS) | YTEXT) + expression[at:]
    return expression


SLICE_DOCUMENTS = st.one_of(
    st.fixed_dictionaries(
        {"slices": st.lists(SLICE_SPECS, max_size=3) | YAML_VALUES}, optional={"version": YAML_VALUES, "x": YAML_VALUES}
    ),
    YAML_VALUES,
)
ROWS = pd.DataFrame(
    {
        "accent": ["a", "b", "a", None],
        "snr": ["5", "10", "x", "20"],
        "language": ["en", "en", "fr", "en"],
    }
)


def check_slice_file(folder: Path, path: Path) -> None:
    """``load_slices``, then what a run does with them: check them against the data and code each row."""
    try:
        specs = load_slices(path)
    except InputError as exc:
        assert_one_line(str(exc), str(path))
        return
    try:
        check_slices(specs, ROWS, list(ROWS.columns), str(path))
    except InputError as exc:
        assert_one_line(str(exc), str(path))
        return
    for spec in specs:
        coded = slice_codes(ROWS, spec)
        assert len(coded.codes) == len(ROWS)
        slice_frame(ROWS, spec)
        assert len(spec.where_mask(ROWS)) == len(ROWS)


@fuzz(1300)
@given(document=SLICE_DOCUMENTS)
def test_slice_file_never_throws(scratch, document):
    RUN["slice file"] += 1
    text = dump_yaml(document)
    with workdir(scratch) as folder, contextlib.chdir(folder):
        path = folder / "slices.yaml"
        path.write_text(text, encoding="utf-8")
        check_slice_file(folder, path)
        assert not (folder / "PWNED").exists()


@fuzz(1300)
@given(where=where_expressions() | st.sampled_from(INJECTIONS) | YTEXT)
def test_where_expression_never_runs_code(scratch, where):
    RUN["where expression"] += 1
    text = dump_yaml({"slices": [{"by": "accent", "where": where}]})
    with workdir(scratch) as folder, contextlib.chdir(folder):
        path = folder / "slices.yaml"
        path.write_text(text, encoding="utf-8")
        check_slice_file(folder, path)
        assert not (folder / "PWNED").exists() and not (REPO / "PWNED").exists()


@pytest.mark.parametrize("where", [w for w in INJECTIONS if "PWNED" in w or "(" in w])
def test_where_injection_is_an_input_error(tmp_path, monkeypatch, where):
    RUN["where expression"] += 1
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "slices.yaml"
    path.write_text(yaml.safe_dump({"slices": [{"by": "accent", "where": where}]}), encoding="utf-8")
    if where.startswith("(" * 300):  # parentheses are grammar; a deep but legal expression may load
        check_slice_file(tmp_path, path)
        return
    with pytest.raises(InputError) as caught:
        load_slices(path)
    assert_one_line(str(caught.value), str(path), "where")
    assert not (tmp_path / "PWNED").exists()


# ---------------------------------------------------------------------------------------------
# 4. Audio
# ---------------------------------------------------------------------------------------------

SUBTYPES = {
    "WAV": ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW", "IMA_ADPCM", "MS_ADPCM"],
    "FLAC": ["PCM_S8", "PCM_16", "PCM_24"],
    "OGG": ["VORBIS"],
    "AIFF": ["PCM_16", "FLOAT"],
}


@st.composite
def audio_files(draw: st.DrawFn) -> tuple[bytes, str]:
    """(file bytes, file name suffix): real encodings at odd rates and shapes, then damaged."""
    kind = draw(st.sampled_from(["WAV", "WAV", "WAV", "WAV", "FLAC", "OGG", "AIFF", "bytes", "empty"]))
    suffix = draw(st.sampled_from([".wav", ".flac", ".ogg", ".aiff", ".mp3", ""]))
    event(kind if kind in ("empty", "bytes") else "encoded")
    if kind == "empty":
        return b"", suffix
    if kind == "bytes":
        return draw(st.binary(max_size=2048)), suffix
    rate = draw(st.sampled_from([1, 2, 3, 100, 1000, 8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000]))
    channels = draw(st.sampled_from([1, 1, 1, 2, 2, 3, 6]))
    seconds = draw(st.sampled_from([0.001, 0.02, 0.1, 0.5, 2.0, 30.0]))  # a 30 s clip now and then
    if kind == "OGG":
        seconds = min(seconds, 0.5)  # the encoder is slow
    frames = draw(
        st.integers(draw(st.sampled_from([0, 1, 1, 1])), max(1, min(int(seconds * rate), 2_000_000 // channels)))
    )
    content = draw(st.sampled_from(["silence", "noise", "noise", "loud", "nan"]))
    rng = np.random.default_rng(frames)
    signal = {
        "silence": np.zeros((frames, channels)),
        "noise": rng.uniform(-1, 1, (frames, channels)),
        "loud": rng.uniform(-8, 8, (frames, channels)),
        "nan": np.full((frames, channels), np.nan),
    }[content]
    out = io.BytesIO()
    try:
        sf.write(out, signal, rate, format=kind, subtype=draw(st.sampled_from(SUBTYPES[kind])))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, AssertionError):  # libsndfile cannot write it
        assume(False)
    data = out.getvalue()
    damage = draw(st.sampled_from(["none"] * 6 + ["truncate", "header", "garbage", "data_size"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "header":  # RIFF/WAVE magic, fmt fields (not the rate: that only makes the clip longer)
        at = draw(st.sampled_from([0, 4, 8, 12, 16, 20, 22, 32, 34, 36, 40]))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at + 4 :]
    elif damage == "garbage":
        data += draw(st.binary(min_size=1, max_size=64))
    elif damage == "data_size":
        data = data[:40] + b"\xff\xff\xff\xff" + data[44:]
    event(f"{kind}, damage: {damage}")
    event(f"{rate} Hz, {channels} channels")
    return data, suffix


SEGMENTS = st.tuples(
    st.sampled_from([0.0, 0.0, 0.0, 0.0, 0.01, 0.5, 3.0, 1e6]),
    st.sampled_from([None, None, None, 1e-9, 0.001, 0.05, 1.0, 100.0]),
)
CONDITION_CHAINS = st.sampled_from(
    [
        [],
        [{"type": "gain", "db": 30}],
        [{"type": "clip", "percentile": 90}],
        [{"type": "lowpass", "cutoff_hz": 3000}],
        [{"type": "telephone"}],
        [{"type": "reverb", "rt60_s": 0.3}],
        [{"type": "noise", "snr_db": 5, "color": "pink"}],
        [{"type": "noise", "snr_db": 5, "file": "__self__"}],  # the fuzzed file as the noise recording
        [{"type": "tone", "freq_hz": 50, "snr_db": 0}],
        [{"type": "babble", "snr_db": 0, "talkers": 2}],
    ]
)


def rendering_for(chain: list[dict], audio: Path, pool: list[Utterance]):
    if not chain:
        return None
    transforms = [{**t, "file": str(audio)} if t.get("file") == "__self__" else t for t in chain]
    return Simulator(pool, seed=0, sample_rate=SAMPLE_RATE).bind(Condition(name="c", transforms=transforms))


def check_prepared(utterances: list[Utterance], requests: list, failed: list) -> None:
    assert sorted([r.utterance.id for r in requests] + [t.id for t in failed]) == sorted(u.id for u in utterances)
    for request in requests:
        assert request.samples.ndim == 1 and request.samples.dtype == np.float32 and request.samples.size > 0
    for transcript in failed:
        assert transcript.status == "error" and isinstance(transcript.error, str) and transcript.error


@fuzz(700)
@given(audio=audio_files(), segment=SEGMENTS, chain=CONDITION_CHAINS)
def test_audio_decodes_or_fails_the_utterance(scratch, audio, segment, chain):
    RUN["audio"] += 1
    data, suffix = audio
    offset, duration = segment
    with workdir(scratch) as folder:
        path = folder / f"clip{suffix}"
        path.write_bytes(data)
        utt = Utterance(id="u1", audio=path, text="hello", speaker="s1", offset=offset, duration=duration)
        good = Utterance(id="u2", audio=folder / "tone.wav", text="there", speaker="s2")
        # what a run does per clip: decode (and render the condition) on the prefetch thread
        requests, failed = _prepare([utt, good], SAMPLE_RATE, True, rendering_for(chain, path, [utt, good]))
        check_prepared([utt, good], requests, failed)
        event("clip: " + ("decoded" if "u1" in [r.utterance.id for r in requests] else "failed"))
        if not chain:
            assert [r.utterance.id for r in requests][-1:] == ["u2"], failed  # a bad clip never sinks a good one
        # ... and what validate does: read the header, report a Problem
        manifest = folder / "manifest.jsonl"
        row = {"id": "u1", "audio": path.name, "text": "hello", "speaker": "s1", "offset": offset}
        manifest.write_text(line_of(row if duration is None else {**row, "duration": duration}) + "\n")
        check_manifest(manifest, check_audio=True)


class HearingStub(StubBackend):
    """The stub, asking for decoded audio as every real backend does, two clips per batch."""

    capabilities = Capabilities(needs_audio=True, max_batch_size=2)


@pytest.mark.slow  # hypothesis, many audio files
@fuzz(200)
@given(files=st.lists(audio_files(), min_size=1, max_size=3), chain=CONDITION_CHAINS)
def test_transcribe_all_records_audio_failures(scratch, files, chain):
    RUN["audio (transcribe_all)"] += 1
    with workdir(scratch) as folder:
        utterances = []
        for i, (data, suffix) in enumerate(files):
            path = folder / f"clip{i}{suffix}"
            path.write_bytes(data)
            utterances.append(Utterance(id=f"u{i}", audio=path, text="hello there", speaker=f"s{i}"))
        utterances.append(Utterance(id="good", audio=folder / "tone.wav", text="fine", speaker="s9"))
        cache = TranscriptCache(folder / "cache.sqlite")
        try:
            rendering = rendering_for(chain, utterances[0].audio, utterances)
            result = transcribe_all(utterances, HearingStub(StubOptions()), cache, rendering=rendering)
        finally:
            cache.close()
        assert set(result.transcripts) == {u.id for u in utterances}
        for transcript in result.transcripts.values():
            assert (transcript.status, transcript.error is None) in {("ok", True), ("error", False)}
        if not chain:
            assert result.transcripts["good"].status == "ok"


# ---------------------------------------------------------------------------------------------
# Regressions: the smallest inputs that once ended in a traceback or a multi-line error
# ---------------------------------------------------------------------------------------------

OK = '{"id": "u1", "audio": "tone.wav", "text": "hi", "speaker": "s"'
MANIFEST_REGRESSIONS = [
    ("[" * 3000 + "]" * 3000, None, "nested too deeply"),  # RecursionError from json.loads
    (OK + ', "offset": ' + "1" * 5000 + "}", None, "4300 digits"),  # ValueError from json.loads
    (OK + ', "offset": 1' + "0" * 400 + "}", "offset", "finite"),  # OverflowError from float()
    ('{"id": "u1", "audio": "a\\u0000.wav", "text": "hi"}', "audio", "NUL"),  # ValueError from Path.resolve
    ('{"id": "u1", "audio": "\\ud800.wav", "text": "hi"}', "audio", "surrogate"),  # UnicodeEncodeError
    ('{"id": "u\\ud800", "audio": "tone.wav", "text": "hi"}', "id", "surrogate"),  # crashed the cache at run
    (OK + ', "t\\udc80g": "v"}', "t\\udc80g", "surrogate"),  # crashed stdout in validate
    (OK + '}\n{"id": "u1", "audio": "tone.wav", "text": "hi"}', "id", "duplicate"),
    (OK + ', "a\\nb": 3}', "a\nb", "tag values"),  # a two-line Problem
]


@pytest.mark.parametrize(("line", "field", "fragment"), MANIFEST_REGRESSIONS)
def test_manifest_regressions(tmp_path, line, field, fragment):
    write_tone(tmp_path / "tone.wav", seconds=0.1)
    path = tmp_path / "manifest.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    manifest = check_manifest(path, check_audio=True)
    (problem,) = [p for p in manifest.errors if fragment in p.message]
    assert problem.field == field and problem.line == (2 if fragment == "duplicate" else 1)


@pytest.mark.parametrize("where", ["not " * 3000 + "accent == 'a'", "not " * 101 + "accent == 'a'"])
def test_where_nesting_is_an_input_error(tmp_path, where):
    path = tmp_path / "slices.yaml"  # RecursionError escaped from where._check
    path.write_text(yaml.safe_dump({"slices": [{"by": "accent", "where": where}]}), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_slices(path)
    assert_one_line(str(caught.value), str(path), "nested more than 100 levels")


def test_csv_bad_header_is_a_problem(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_bytes(b'"u1";"u1"\r\n')  # csv.Error escaped from reading the header
    (problem,) = check_manifest(path, check_audio=True).errors
    assert problem.line == 1 and "bad CSV header" in problem.message


CONFIG_REGRESSIONS = [
    (b"name: a\x00b\n", ":1: bad YAML: unacceptable character #x0000"),  # was two lines
    (b"seed: " + b"1" * 5000 + b"\n", ":1: bad YAML: cannot read"),  # ValueError from int()
    (b"seed: 0x" + b"f" * 4000 + b"\n", ":1: bad YAML: cannot read"),  # loaded, then broke str() in the run
    (b"seed: 2001-13-01\n", "'seed': Input should be a valid integer"),  # was a ValueError from datetime()
    (b"name: a\nbackend: {name: stub, seed: !!binary '@@@'}\n", ":2: bad YAML: !!binary values are not supported"),
    (b"name: a\nbackend: {name: stub, day: 2026-12-01}\n", "'dataset': Field required"),  # a date stays text
    (b"seed: !!bool maybe\n", ":1: bad YAML: cannot read 'maybe'"),  # KeyError from the bool constructor
    (b"name: " + b"[" * 1000 + b"]" * 1000 + b"\n", "nested too deeply"),  # RecursionError
    (b'name: a\ndataset: "x\\0y"\nbackend: {name: stub}\n', "'dataset': 'x\\x00y' is not a usable path"),
    (b'name: a\ndataset: x\nbackend: {name: stub}\noutput: "o\\0"\n', "'output'"),  # mkdir failed mid-run
    (b'name: a\ndataset: x\nbackend: {name: stub}\nstats: {"a\\nb": 1}\n', "'stats.a\\nb': unknown key"),
    (b"name: a\ndataset: x\nbackend: {name: stub}\nstats: {seed: -1}\n", "'stats.seed'"),  # numpy rejected it
    (b"name: a\ndataset: x\nbackend: {name: stub}\nstats: {bootstrap: 1000000000000}\n", "'stats.bootstrap'"),
    (b"name: a\ndataset: x\nbackend: {name: stub}\ngate: {seed: -1}\n", "'gate.seed'"),
    (b"name: a\ndataset: x\nbackend: {name: stub}\nslices: [{by: s, bins: {s: [.nan, 3]}}]\n", "bins for s"),
    (b'name: a\ndataset: x\nbackend: {name: stub}\nconditions: [{name: c, transforms: [{file: "a\\nb"}]}]\n', "a\\nb"),
]


@pytest.mark.parametrize(("text", "fragment"), CONFIG_REGRESSIONS)
def test_config_regressions(tmp_path, text, fragment):
    path = tmp_path / "run.yaml"
    path.write_bytes(text)
    with pytest.raises(InputError) as caught:
        load_config(path)
    assert_one_line(str(caught.value), str(path), fragment)


# ---------------------------------------------------------------------------------------------
# 5. End to end: the CLI in a subprocess, exit 2, no traceback, a one-line error
# ---------------------------------------------------------------------------------------------

GOOD_CONFIG = {"version": 1, "name": "e2e", "dataset": "manifest.jsonl", "backend": {"name": "stub"}}
GOOD_CONFIG |= {"stats": {"min_speakers": 1, "min_words": 1, "bootstrap": 10, "permutations": 10}, "output": "runs"}
GOOD_CONFIG_TEXT = yaml.safe_dump(GOOD_CONFIG)
MANIFEST_TEXT = "".join(line_of(r) + "\n" for r in GOOD_ROWS)
VALIDATE_CASES = {
    "deep-json": "[" * 3000 + "]" * 3000 + "\n",
    "huge-int": OK + ', "offset": ' + "9" * 5000 + "}\n",
    "overflow": OK + ', "offset": 1' + "0" * 400 + "}\n",
    "nul-path": '{"id": "u1", "audio": "a\\u0000.wav", "text": "hi"}\n',
    "surrogate-tag": OK + ', "t\\udc80g": "v"}\n',
    "surrogate-id": '{"id": "u\\ud800", "audio": "tone.wav", "text": "hi"}\n',
    "newline-id": '{"id": "a\\nb", "audio": "tone.wav", "text": "hi"}\n' * 2,
    "not-utf8": b'{"id": "caf\xe9", "audio": "tone.wav", "text": "hi"}\n',
    "bidi-markup": '{"id": "[red]\\u202e", "audio": "tone.wav", "text": "hi", "accent": "[/]"}\n' + OK + ', "x": 1}\n',
}
VALIDATE_CSV = {
    "ragged": "id,audio,text\nu1,tone.wav,hi,extra\n",
    "quote": 'id,audio,text\nu1,tone.wav,"unterminated\n',
    "no-header": "u1,tone.wav,hi\n",
    "nul": "id,audio,text\nu1,to\x00ne.wav,hi\n",
}
CARD_CASES = {
    "card-nul": "tags: {accent: {values: [a\x00]}}\n",
    "card-bad-values": 'tags: {"acc\\nent": 3}\n',
}


@pytest.mark.parametrize("case", [*VALIDATE_CASES, *VALIDATE_CSV, *CARD_CASES])
def test_cli_validate_bad_manifest(tmp_path, case):
    RUN["CLI (subprocess)"] += 1
    write_tone(tmp_path / "tone.wav", seconds=0.1)
    path = tmp_path / ("manifest.csv" if case in VALIDATE_CSV else "manifest.jsonl")
    content = VALIDATE_CASES.get(case) or VALIDATE_CSV.get(case) or ""
    if case in CARD_CASES:
        content = MANIFEST_TEXT
        (tmp_path / DATASET_CARD).write_text(CARD_CASES[case], encoding="utf-8")
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    result = asrfair("validate", str(path), cwd=tmp_path)
    assert_clean_error(result, 2)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.stderr
    for line in lines:  # each problem is one line naming the file, or the single error line
        assert line.startswith(str(path)) or (line.startswith("error: ") and str(tmp_path) in line), result.stderr


RUN_CASES = {
    "nul-char": b"name: a\x00b\n",
    "python-tag": b"!!python/object/apply:os.system ['touch PWNED']\n",
    "deep": b"name: " + b"[" * 1000 + b"]" * 1000 + b"\n",
    "bad-date": GOOD_CONFIG_TEXT.encode() + b"seed: 2001-13-01\n",
    "huge-int": GOOD_CONFIG_TEXT.encode() + b"seed: " + b"9" * 5000 + b"\n",
    "binary": bytes(range(256)),
    "newline-key": GOOD_CONFIG_TEXT.replace("stats:", 'stats:\n  "a\\nb": 1').encode(),
    "nul-dataset": GOOD_CONFIG_TEXT.replace("dataset: manifest.jsonl", 'dataset: "m\\0.jsonl"').encode(),
    "nul-output": GOOD_CONFIG_TEXT.replace("output: runs", 'output: "r\\0"').encode(),
    "negative-seed": GOOD_CONFIG_TEXT.replace("bootstrap: 10", "bootstrap: 10\n  seed: -1").encode(),
    "huge-bootstrap": GOOD_CONFIG_TEXT.replace("bootstrap: 10", "bootstrap: 1000000000000").encode(),
    "nan-bins": GOOD_CONFIG_TEXT.encode() + b"slices: [{by: snr, bins: {snr: [.nan, 30]}}]\n",
    "where-injection": GOOD_CONFIG_TEXT.encode() + b'slices: [{by: accent, where: "%s"}]\n' % INJECTIONS[0].encode(),
    "surrogate-manifest": GOOD_CONFIG_TEXT.replace("manifest.jsonl", "surrogate.jsonl").encode(),
    "noise-file-newline": GOOD_CONFIG_TEXT.encode() + b'conditions: [{name: c, transforms: [{file: "a\\nb"}]}]\n',
}  # fmt: skip


@pytest.mark.parametrize("case", list(RUN_CASES))
def test_cli_run_bad_config(tmp_path, case):
    RUN["CLI (subprocess)"] += 1
    write_tone(tmp_path / "tone.wav", seconds=0.1)
    (tmp_path / "manifest.jsonl").write_text(MANIFEST_TEXT, encoding="utf-8")
    (tmp_path / "surrogate.jsonl").write_text(MANIFEST_TEXT + '{"id": "u\\ud800", "audio": "tone.wav", "text": "x"}\n')
    config = tmp_path / "run.yaml"
    config.write_bytes(RUN_CASES[case])
    result = asrfair("run", str(config), cwd=tmp_path)
    assert_clean_error(result, 2)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert_names_one(errors[0], str(config), str(tmp_path / "surrogate.jsonl"))
    assert not (tmp_path / "PWNED").exists()


def test_zz_example_count():
    """Examples that ran, per parser (logged); the default suite runs at least 10,000."""
    total = sum(RUN.values())
    log.info("fuzz examples run: %s; total %d", dict(RUN), total)
    if len(RUN) < 11:
        pytest.skip(f"only part of the file ran ({total} examples)")
    assert total >= 10_000, dict(RUN)
