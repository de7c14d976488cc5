"""Normaliser presets rule by rule, user YAML normalisers and plugins from entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from cli import asrfair

from harness.errors import InputError
from harness.scoring.normalisers import PRESETS, available_normalizers, get_normalizer, load_normalizer_file

CASES = [
    # (preset, raw, normalised)
    ("whisper-english", "Mr. Smith paid $20 for the colour TV.", "mister smith paid $20 for the color tv"),
    ("whisper-english", "I'm gonna go", "i am going to go"),
    ("whisper-english", "I ain't gonna do it, y'all.", "i aint going to do it you all"),
    ("whisper-english", "We wanna go, innit?", "we want to go innit"),
    ("whisper-english", "Uh, the neighbour's [laughter] car", "the neighbor is car"),
    ("whisper-english", "Twenty-five people paid 1,000 dollars", "25 people paid $1000"),
    ("whisper-english", "uh um hmm", ""),
    ("whisper-english", "", ""),
    ("dialect-preserving", "I ain't gonna do it, y'all.", "i ain't gonna do it y'all"),
    ("dialect-preserving", "We wanna go, innit?", "we wanna go innit"),
    ("dialect-preserving", "The colour of my neighbour's car", "the colour of my neighbour's car"),
    ("dialect-preserving", "I was goin' to the café", "i was goin to the café"),
    ("dialect-preserving", "Uh, I dunno [laughter]", "uh i dunno laughter"),
    ("dialect-preserving", "Twenty-five people paid 1,000 dollars", "25 people paid $1000"),
    ("dialect-preserving", "It's 3.5% more. Really...", "it's 3.5% more really"),
    ("dialect-preserving", "  ...  ", ""),
    ("dialect-preserving", "", ""),
    ("basic", "Hello,  World! It's 'quoted'.", "hello world it's quoted"),
    ("basic", "Ain't gonna", "ain't gonna"),
    ("basic", "  ", ""),
    ("none", "Keep  Case, please.", "Keep Case, please."),
    ("none", "", ""),
]


@pytest.mark.parametrize(("name", "raw", "expected"), CASES)
def test_presets(name, raw, expected):
    assert get_normalizer(name)(raw) == expected


def test_dialect_preserving_differs_from_whisper_english_only_in_word_forms():
    """Number formats fold the same way under both, so a WER move between them is word forms."""
    whisper, dialect = get_normalizer("whisper-english"), get_normalizer("dialect-preserving")
    for text in ("twenty five", "1,000", "nineteen ninety nine", "ten percent", "$5", "3.5"):
        assert whisper(text) == dialect(text), text


def test_every_preset_is_versioned_and_pinnable():
    assert get_normalizer("basic").stamp == "basic@1"
    assert get_normalizer("whisper-english@1").stamp == "whisper-english@1"
    assert get_normalizer("whisper-english").library.startswith("whisper-normalizer ")
    assert {p.name for p in PRESETS} == {"whisper-english", "dialect-preserving", "basic", "none"}
    assert [n.stamp for n in available_normalizers()][:4] == [
        "whisper-english@1",
        "dialect-preserving@1",
        "basic@1",
        "none@1",
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fancy", "unknown normalizer 'fancy'; choose one of: whisper-english, dialect-preserving, basic, none"),
        ("dialect-preservng", "did you mean 'dialect-preserving'?"),
        ("whisper-english@2", "normalizer 'whisper-english' has no version 2; versions: 1"),
        ("missing.yaml", "normalizer file missing.yaml not found"),
    ],
)
def test_unknown_normalizers_are_one_line_errors(spec, message):
    with pytest.raises(InputError, match=message.replace("?", r"\?")):
        get_normalizer(spec)


def write(path, text):
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_yaml_normalizer_applies_its_steps_in_order(tmp_path):
    path = write(
        tmp_path / "clinic.yaml",
        """\
        name: clinic
        version: 2
        description: basic, then clinical shorthand spelt out
        steps:
          - preset: basic@1
          - substitute_words: {bp: blood pressure, pt: patient}
          - substitute_regexes: {"\\\\bmg\\\\b": milligrams}
          - remove_specific_words: [um, uh]
          - remove_multiple_spaces
          - strip
        """,
    )
    clinic = get_normalizer(str(path))
    assert clinic("Um, the PT's BP is high; 5 mg.") == "the patient's blood pressure is high 5 milligrams"
    assert clinic.stamp == "clinic@2" and clinic.source == str(path)
    assert clinic.definition["steps"][0] == {"preset": "basic@1"}
    edited = write(tmp_path / "edited.yaml", path.read_text().replace("milligrams", "mgs"))
    assert get_normalizer(str(edited)).sha256 != clinic.sha256  # same name@version, other rules


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("name: x\nversion: 1\nsteps: [lowercase]\n", "'steps[0]': unknown step 'lowercase'; did you mean"),
        ("name: x\nversion: 1\nsteps: [{substitute_words: [a, b]}]\n", "'substitute_words' takes a mapping"),
        ("name: x\nversion: 1\nsteps: [{strip: true}]\n", "'strip' takes no argument"),
        ("name: x\nversion: 1\nsteps: [{substitute_regexes: {'(': x}}]\n", "bad regular expression"),
        ("name: x\nversion: 1\nsteps: [{preset: fancy}]\n", "'steps[0]': 'preset': unknown preset 'fancy'"),
        ("name: x\nversion: 1\nsteps: [{substitute_words: {a: 1}}]\n", "1 is not; quote it"),
        ("name: x\nversion: 1\nsteps: [{a: 1, b: 2}]\n", "one step per list item"),
        ("name: x\nversion: 1\nsteps: []\n", "steps"),
        ("name: basic\nversion: 9\nsteps: [strip]\n", "is a built-in preset"),
        ("name: x\nsteps: [strip]\n", "version"),
        ("name: x\nversion: 1\nsteps: [strip]\ncolour: red\n", "colour"),
    ],
)
def test_bad_yaml_normalizers_name_file_and_step(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(InputError, match=str(path)) as error:
        load_normalizer_file(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_plugin_normalizer_comes_from_its_entry_point(tmp_path):
    """A real installed-looking package on sys.path: a module plus dist-info naming the entry point."""
    (tmp_path / "shouty_norm.py").write_text(
        "from harness.scoring.normalisers import Normalizer\n"
        "def make():\n"
        "    return Normalizer('shouty', '3', str.upper, 'upper case')\n"
        "def broken():\n"
        "    raise RuntimeError('no rules file')\n",
        encoding="utf-8",
    )
    dist = tmp_path / "shouty_norm-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shouty-norm\nVersion: 1.0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(
        "[asrfair.normalizers]\nshouty = shouty_norm:make\nbroken = shouty_norm:broken\n", encoding="utf-8"
    )
    script = (
        "from harness.scoring.normalisers import get_normalizer\n"
        "n = get_normalizer('shouty@3')\nprint(n.stamp, n.source, n('a b'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert out.stdout.strip() == "shouty@3 entry point shouty_norm:make A B"
    bare = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    listing = asrfair("normalizers", "--json", env=bare, inherit=False)
    assert listing.returncode == 0, listing.stderr
    assert '"normalizer": "shouty@3"' in listing.stdout
    warning = " ".join(listing.stderr.split())  # the log line wraps at the terminal width
    assert "normalizer 'broken' (shouty_norm:broken) failed to build: RuntimeError: no rules file" in warning
    failing = asrfair("normalizers", "--text", "x", env=bare, inherit=False)
    assert failing.returncode == 0 and "shouty@3" in failing.stdout
