"""Real PocketSphinx 5 (the en-US model bundled in its wheel) on demo clips, through the pipeline."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
import sys

import jiwer
import pandas as pd
import pytest
from conftest import REPO, demo_records, write_config, write_jsonl

from harness.backends.base import Registry
from harness.config import load_config
from harness.errors import BackendUnavailable
from harness.pipeline import prepare, run
from harness.transcribe.local import _prepare

pytest.importorskip("pocketsphinx")
pytestmark = pytest.mark.slow
SPHINX = {"name": "pocketsphinx"}
CLIPS = 6  # one per demo dialect; about a second of decoding each


@pytest.fixture(scope="module")
def sphinx_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sphinx")
    manifest = write_jsonl(tmp / "manifest.jsonl", demo_records(per_dialect=1, into=tmp))
    config = load_config(write_config(tmp / "run.yaml", manifest, SPHINX))
    return config, run(prepare(config))


@pytest.fixture(scope="module")
def clips(sphinx_run):
    config, _ = sphinx_run
    prepared, failed = _prepare(prepare(config).manifest.utterances, 16_000, needs_audio=True, rendering=None)
    assert not failed
    return prepared


def test_real_decode_scores_like_jiwer(sphinx_run):
    _config, outcome = sphinx_run
    transcripts = pd.read_parquet(outcome.paths.transcripts)
    assert len(transcripts) == CLIPS and (transcripts["status"] == "ok").all()
    assert transcripts["text"].str.strip().str.len().gt(0).all()
    table = pd.read_parquet(outcome.paths.utterances)
    expected = jiwer.wer(table["ref_norm"].tolist(), table["hyp_norm"].tolist())
    overall = outcome.metrics["overall"]["wer"]
    assert math.isfinite(overall) and overall == pytest.approx(expected)
    for dimension in outcome.metrics["dimensions"]:
        if dimension["by"] == ["dialect"]:
            for s in dimension["slices"]:
                rows = table[table["dialect"] == s["label"]]
                assert s["wer"] == pytest.approx(jiwer.wer(rows["ref_norm"].tolist(), rows["hyp_norm"].tolist()))
    fingerprint = outcome.metrics["provenance"]["backend"]["fingerprint"]
    assert fingerprint["engine"].startswith("pocketsphinx@") and set(fingerprint["models"]) == {"hmm", "dict", "lm"}


def test_text_depends_on_the_clip_only(sphinx_run, clips):
    """A fresh decoder given the clips in reverse order: the pipeline's text, clip for clip."""
    _config, outcome = sphinx_run
    expected = pd.read_parquet(outcome.paths.transcripts).set_index("id")["text"]
    backend = Registry.default().create("pocketsphinx")
    some = clips[:3]
    reverse = backend.transcribe(some[::-1])[::-1]  # each clip after a different one than in the run
    assert [t.text for t in reverse] == [expected[r.utterance.id] for r in some]


def test_rerun_is_served_from_cache(sphinx_run):
    config, first = sphinx_run
    again = run(prepare(config))
    assert (first.transcribed, again.transcribed, again.from_cache) == (CLIPS, 0, CLIPS)
    assert again.metrics["overall"]["wer"] == first.metrics["overall"]["wer"]


def test_other_language_fails_that_utterance(clips):
    backend = Registry.default().create("pocketsphinx")
    french = dataclasses.replace(clips[0], utterance=dataclasses.replace(clips[0].utterance, language="fr"))
    british = dataclasses.replace(
        clips[1],
        utterance=dataclasses.replace(clips[1].utterance, language="en-GB"),
        samples=clips[1].samples[:16_000],  # a second is enough to show it is decoded
    )
    failed, ok = backend.transcribe([french, british])
    assert failed.status == "error" and "model is 'en', utterance is 'fr'" in failed.error
    assert ok.status == "ok" and ok.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hmm": "/no/such/model"}, "option 'hmm': model directory not found: /no/such/model"),
        ({"lm": "/no/such.lm.bin"}, "option 'lm': model file not found"),
        ({"dictionary": "/no/such.dict"}, "option 'dictionary': model file not found"),
    ],
)
def test_missing_model_path_is_one_line(options, message):
    with pytest.raises(BackendUnavailable, match=message) as info:
        Registry.default().create("pocketsphinx", options)
    assert "\n" not in str(info.value)


def test_corrupt_model_file_is_one_line(tmp_path):
    bad = tmp_path / "broken.lm.bin"
    bad.write_bytes(b"not a language model" * 100)
    with pytest.raises(BackendUnavailable, match=r"cannot load its model \(lm=.*broken.lm.bin\)") as info:
        Registry.default().create("pocketsphinx", {"lm": str(bad)})
    assert "\n" not in str(info.value)


def test_fingerprint_follows_model_content_and_options(tmp_path):
    import pocketsphinx

    bundled = Registry.default().create("pocketsphinx")
    copy = tmp_path / "copy.dict"
    shutil.copy(pocketsphinx.get_model_path("en-us/cmudict-en-us.dict"), copy)
    same = Registry.default().create("pocketsphinx", {"dictionary": str(copy)})
    assert same.fingerprint_id() == bundled.fingerprint_id()  # content, not path
    with copy.open("a") as handle:
        handle.write("quokka K W AA K AH\n")
    edited = Registry.default().create("pocketsphinx", {"dictionary": str(copy)})
    weighted = Registry.default().create("pocketsphinx", {"lw": 8.0})
    assert len({bundled.fingerprint_id(), edited.fingerprint_id(), weighted.fingerprint_id()}) == 3


def test_backends_listing_shows_options_without_importing_the_engine():
    code = (
        "import json, sys\n"
        "from harness.cli import main\n"
        "sys.argv = ['asrfair', 'backends', '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('ENGINE_IMPORTED' if 'pocketsphinx' in sys.modules else 'ENGINE_NOT_IMPORTED')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    listing, _, marker = result.stdout.rpartition("]")
    entry = next(e for e in json.loads(listing + "]") if e["name"] == "pocketsphinx")
    assert {"hmm", "dictionary", "lm", "language", "beam", "wbeam", "lw"} <= set(entry["options"])
    assert entry["options"]["language"]["default"] == "en"
    assert marker.strip() == "ENGINE_NOT_IMPORTED"


def test_missing_extra_names_the_pip_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # import fails as if not installed
    with pytest.raises(BackendUnavailable, match=r"pip install 'asr-fairness-harness\[pocketsphinx\]'"):
        Registry.default().create("pocketsphinx")
