"""The transformers backend with a tiny random-weight wav2vec2 CTC model built offline in a temp dir.

The text is garbage (random weights); what is tested is the plumbing: local loading, one
transcript per utterance through the real pipeline, determinism, caching and the fingerprint.
Skipped where the optional ``transformers`` extra (transformers + torch) is not installed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import demo_records, write_config, write_jsonl

from harness.backends.base import Registry
from harness.config import load_config
from harness.errors import BackendUnavailable
from harness.pipeline import prepare, run
from harness.transcribe.local import _prepare

VOCAB = ["[PAD]", "[UNK]", "|", *"abcdefghijklmnopqrstuvwxyz'"]


def build_tiny_wav2vec2(directory: Path, seed: int) -> Path:
    """A ~30 kB Wav2Vec2ForCTC with processor, written by save_pretrained; no hub access."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.json"
    vocab_file.write_text(json.dumps({token: i for i, token in enumerate(VOCAB)}), encoding="utf-8")
    tokenizer = transformers.Wav2Vec2CTCTokenizer(
        str(vocab_file), unk_token="[UNK]", pad_token="[PAD]", word_delimiter_token="|"
    )
    extractor = transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    transformers.Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(directory)
    config = transformers.Wav2Vec2Config(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    transformers.Wav2Vec2ForCTC(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_wav2vec2(tmp_path_factory.mktemp("tiny-w2v") / "model", seed=0)


@pytest.fixture(scope="module")
def tiny_run(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tf-run")
    manifest = write_jsonl(tmp / "manifest.jsonl", demo_records(per_dialect=1, into=tmp))
    backend = {"name": "transformers", "model": str(tiny_model), "device": "cpu"}
    config = load_config(write_config(tmp / "run.yaml", manifest, backend, max_failure_rate=0.0))
    return config, run(prepare(config))


@pytest.mark.slow
def test_one_transcript_per_utterance_through_the_pipeline(tiny_run):
    _config, outcome = tiny_run
    transcripts = pd.read_parquet(outcome.paths.transcripts)
    assert len(transcripts) == 6 and transcripts["id"].is_unique
    assert (transcripts["status"] == "ok").all() and transcripts["text"].map(type).eq(str).all()
    fingerprint = outcome.metrics["provenance"]["backend"]["fingerprint"]
    assert fingerprint["engine"].startswith("transformers@") and fingerprint["device"] == "cpu"


@pytest.mark.slow
def test_deterministic_and_cached(tiny_run, tiny_model):
    config, first = tiny_run
    again = run(prepare(config))
    assert (first.transcribed, again.transcribed, again.from_cache) == (6, 0, 6)
    expected = pd.read_parquet(first.paths.transcripts).set_index("id")["text"]
    requests, failed = _prepare(prepare(config).manifest.utterances, 16_000, needs_audio=True, rendering=None)
    assert not failed
    fresh = Registry.default().create("transformers", {"model": str(tiny_model), "device": "cpu"})
    assert [t.text for t in fresh.transcribe(requests[::-1])][::-1] == [expected[r.utterance.id] for r in requests]


@pytest.mark.slow
def test_batched_returns_one_ok_transcript_per_request_in_order(tiny_run, tiny_model):
    config, _ = tiny_run
    requests, _ = _prepare(prepare(config).manifest.utterances, 16_000, needs_audio=True, rendering=None)
    batched = Registry.default().create("transformers", {"model": str(tiny_model), "device": "cpu", "batch_size": 4})
    assert batched.capabilities.max_batch_size == 4
    results = batched.transcribe(requests[:4])
    assert [t.id for t in results] == [r.utterance.id for r in requests[:4]]
    assert all(t.status == "ok" and isinstance(t.text, str) for t in results)
    assert [t.text for t in batched.transcribe(requests[:4])] == [t.text for t in results]
    broken = [requests[0], dataclasses.replace(requests[1], samples=None), requests[2]]
    retried = batched.transcribe(broken)  # the batch fails, is retried clip by clip: only the bad one fails
    assert [t.status for t in retried] == ["ok", "error", "ok"] and "needs audio samples" in retried[1].error
    alone = [batched.transcribe([r])[0].text for r in (requests[0], requests[2])]
    assert [retried[0].text, retried[2].text] == alone


@pytest.mark.slow
def test_fingerprint_follows_weights_and_options(tiny_model, tmp_path):
    def fingerprint_id(model: Path, **options: object) -> str:
        return (
            Registry.default()
            .create("transformers", {"model": str(model), "device": "cpu", **options})
            .fingerprint_id()
        )

    base = fingerprint_id(tiny_model)
    assert fingerprint_id(build_tiny_wav2vec2(tmp_path / "same", seed=0)) == base  # content, not path
    assert fingerprint_id(build_tiny_wav2vec2(tmp_path / "other", seed=1)) != base  # new weights
    assert fingerprint_id(tiny_model, batch_size=2) != base  # padding can change the text


def test_missing_model_directory_is_one_line(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(BackendUnavailable, match="must be a local model directory; not found") as info:
        Registry.default().create("transformers", {"model": str(tmp_path / "nope")})
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_directory_without_a_model_is_one_line(tmp_path):
    pytest.importorskip("transformers")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendUnavailable, match="transformers cannot load model") as info:
        Registry.default().create("transformers", {"model": str(tmp_path / "empty"), "device": "cpu"})
    assert "\n" not in str(info.value)


def test_model_option_is_required():
    with pytest.raises(BackendUnavailable, match="model"):
        Registry.default().create("transformers", {})


def test_missing_extra_names_the_pip_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if not installed
    with pytest.raises(BackendUnavailable, match=r"pip install 'asr-fairness-harness\[transformers\]'"):
        Registry.default().create("transformers", {"model": str(tmp_path)})
