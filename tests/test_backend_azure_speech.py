"""azure-speech against a loopback short-audio server: the query, headers and body the API expects,
RecognitionStatus handling, locales and the 60 s limit. What every remote backend does (retries,
per-utterance failures, keys, secrets, fingerprint) is in test_backend_contract.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import write_config, write_jsonl, write_tone
from fakes.azure_speech import CONTENT_TYPES, azure_speech_app
from loopback import LoopbackServer, tone_clips

from harness.backends.azure_speech import read_answer
from harness.backends.base import Registry
from harness.backends.remote import RemoteError, Silence
from harness.config import load_config
from harness.errors import BackendUnavailable
from harness.pipeline import prepare, run

KEY = "azkey-0c1d2e3f-do-not-leak"
ENV = "ASRFAIR_TEST_AZURE_KEY"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, KEY)
    return KEY


def azure_config(tmp_path: Path, corpus: Path, url: str, **options: object):
    backend = {"name": "azure-speech", "base_url": url, "api_key_env": ENV, **options}
    return load_config(write_config(tmp_path / "run.yaml", corpus, backend, max_failure_rate=0.5))


def transcripts(outcome) -> pd.DataFrame:
    return pd.read_parquet(outcome.paths.transcripts).set_index("id")


def test_transcripts_are_correct_and_the_request_is_what_the_api_expects(tmp_path, corpus, oracle, key):
    app = azure_speech_app(oracle, key=KEY)
    with LoopbackServer(app) as server:
        outcome = run(prepare(azure_config(tmp_path, corpus, server.url)))
    assert outcome.metrics["failures"]["count"] == 0
    assert outcome.metrics["overall"]["wer"] == 0.0  # "Alpha bravo charlie delta." normalises to the reference
    assert len(app.state.requests) == 12
    sent = app.state.requests[0]
    assert sent["query"] == {"language": "en-US", "format": "simple", "profanity": "raw"}
    assert sent["headers"]["ocp-apim-subscription-key"] == KEY
    assert sent["headers"]["content-type"] == CONTENT_TYPES[0]
    assert sent["headers"]["accept"] == "application/json"
    assert "authorization" not in sent["headers"]
    assert all(wav.startswith(b"RIFF") for wav in oracle.heard) and len(oracle.heard) == 12
    assert transcripts(outcome).loc["u00", "text"] == "Alpha bravo charlie delta."


def test_options_reach_the_request(tmp_path, corpus, oracle, key):
    app = azure_speech_app(oracle, key=KEY)
    with LoopbackServer(app) as server:
        base_url = server.url + "/speech/recognition/conversation/cognitiveservices/v1"  # a full endpoint works too
        config = azure_config(tmp_path, corpus, base_url, language="en-GB", profanity="masked", endpoint_id="c-123")
        outcome = run(prepare(config))
    assert outcome.metrics["overall"]["wer"] == 0.0
    assert app.state.requests[0]["query"] == {
        "language": "en-GB",
        "format": "simple",
        "profanity": "masked",
        "cid": "c-123",
    }


def test_region_makes_the_endpoint_and_one_of_region_or_base_url_is_required(key):
    registry = Registry.default()
    backend = registry.create("azure-speech", {"region": "westeurope", "api_key_env": ENV})
    assert backend._url == (
        "https://westeurope.stt.speech.microsoft.com/speech/recognition/conversation/cognitiveservices/v1"
    )
    with pytest.raises(BackendUnavailable, match="set 'region'"):
        registry.create("azure-speech", {"api_key_env": ENV})
    with pytest.raises(BackendUnavailable, match="profanity"):
        registry.create("azure-speech", {"region": "westeurope", "api_key_env": ENV, "profanity": "hidden"})


def test_bare_and_regional_languages_become_locales(tmp_path, key):
    clips = tone_clips(tmp_path / "audio", ["a", "b", "c"])
    languages = ["en", "en_GB", "xx"]
    records = [
        {"id": f"u{i}", "audio": str(clip), "text": "alpha bravo", "speaker": "s", "language": lang}
        for i, (clip, lang) in enumerate(zip(clips, languages, strict=True))
    ]
    corpus = write_jsonl(tmp_path / "manifest.jsonl", records)
    app = azure_speech_app(lambda wav: "alpha bravo", key=KEY)
    with LoopbackServer(app) as server:
        outcome = run(prepare(azure_config(tmp_path, corpus, server.url, locales={"en": "en-IE"})))
    assert sorted(r["query"]["language"] for r in app.state.requests) == ["en-GB", "en-IE"]
    table = transcripts(outcome)
    assert table.loc["u2", "status"] == "error" and "language 'xx' is not a locale" in table.loc["u2", "error"]


def test_no_match_is_an_empty_transcript_not_a_failure(tmp_path, corpus, oracle, key):
    def deaf_to_alpha(wav: bytes) -> str:  # clips 0 and 6
        text = oracle(wav)
        return "" if text.startswith("alpha") else text

    app = azure_speech_app(deaf_to_alpha, key=KEY, empty_status="NoMatch")
    with LoopbackServer(app) as server:
        outcome = run(prepare(azure_config(tmp_path, corpus, server.url)))
    assert outcome.metrics["failures"]["count"] == 0
    table = transcripts(outcome)
    assert (table.loc[["u00", "u06"], "status"] == "ok").all()
    assert (table.loc[["u00", "u06"], "text"] == "").all()
    assert len(app.state.requests) == 12  # an answer, not retried
    assert outcome.metrics["overall"]["wer"] > 0  # scored as deletions


def test_each_recognition_status_is_read_as_documented():
    assert read_answer({"RecognitionStatus": "Success", "DisplayText": "Hello there.", "Offset": 1, "Duration": 2}) == (
        "Hello there."
    )
    for status in ("NoMatch", "InitialSilenceTimeout", "BabbleTimeout"):  # the engine heard no words
        assert read_answer({"RecognitionStatus": status, "Offset": 0, "Duration": 0}) == Silence(
            f"RecognitionStatus {status}"
        )
    with pytest.raises(RemoteError, match="RecognitionStatus Error") as caught:
        read_answer({"RecognitionStatus": "Error"})
    assert caught.value.retryable  # "try again if possible"
    with pytest.raises(RemoteError, match="RecognitionStatus 'Timeout'") as caught:
        read_answer({"RecognitionStatus": "Timeout"})
    assert not caught.value.retryable
    with pytest.raises(RemoteError, match="no 'RecognitionStatus'"):
        read_answer({"DisplayText": "hello"})
    with pytest.raises(RemoteError, match="no 'DisplayText'") as caught:
        read_answer({"RecognitionStatus": "Success"})
    assert caught.value.retryable  # an incomplete answer is tried again, never scored


def test_recognition_errors_are_retried_then_recorded_per_utterance(tmp_path, corpus, oracle, key):
    calls: dict[int, int] = {}

    def flaky(wav: bytes) -> str | None:
        """'alpha' clips (0 and 6, both northern) always fail; 'bravo' clips (1 and 7) only the first time."""
        text = oracle(wav)
        calls[len(wav)] = calls.get(len(wav), 0) + 1
        if text.startswith("alpha") or (text.startswith("bravo") and calls[len(wav)] == 1):
            return None
        return text

    app = azure_speech_app(flaky, key=KEY)
    with LoopbackServer(app) as server:
        outcome = run(prepare(azure_config(tmp_path, corpus, server.url, max_attempts=2, backoff_initial=0.0)))
    failures = outcome.metrics["failures"]
    assert failures["count"] == 2
    error = failures["examples"][0]["error"]
    assert "RecognitionStatus Error" in error and "gave up after 2 attempts" in error
    assert len(app.state.requests) == 12 + 2 + 2  # each failing clip tried twice, each flaky clip twice
    accent = next(d for d in outcome.metrics["dimensions"] if d["name"] == "accent")
    assert {s["label"]: s["failed"] for s in accent["slices"]} == {"northern": 2, "southern": 0}


def test_a_clip_over_sixty_seconds_fails_fast_without_a_request(tmp_path, key):
    clips = [write_tone(tmp_path / "audio" / "short.wav", 0.4), write_tone(tmp_path / "audio" / "long.wav", 60.5)]
    records = [
        {"id": name, "audio": str(clip), "text": "alpha bravo", "speaker": "s"}
        for name, clip in zip(["short", "long"], clips, strict=True)
    ]
    corpus = write_jsonl(tmp_path / "manifest.jsonl", records)
    app = azure_speech_app(lambda wav: "alpha bravo", key=KEY)
    with LoopbackServer(app) as server:
        outcome = run(prepare(azure_config(tmp_path, corpus, server.url)))
    assert [round(r["seconds"], 1) for r in app.state.requests] == [0.4]
    table = transcripts(outcome)
    assert table.loc["short", "status"] == "ok"
    long_error = table.loc["long", "error"]
    assert table.loc["long", "status"] == "error" and "clip is 60.5 s" in long_error and "60 s" in long_error
    assert "attempts" not in long_error  # refused before any request, never retried


