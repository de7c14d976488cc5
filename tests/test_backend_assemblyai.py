"""The assemblyai backend through the real pipeline against a loopback fake of upload, transcript jobs
and delete: the job lifecycle and its options (the shared contract: test_backend_contract.py)."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf
from conftest import write_config
from fakes.assemblyai import assemblyai_app
from loopback import LoopbackServer, tone_corpus
from starlette.responses import JSONResponse

from harness.backends.base import Registry
from harness.config import load_config
from harness.errors import BackendUnavailable
from harness.pipeline import prepare, run

KEY = "aai-test-9c04e2f1-do-not-leak"
ENV = "ASRFAIR_ASSEMBLYAI_TEST_KEY"
FAST_POLL = {"poll_initial": 0.01, "poll_max": 0.02}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """12 tone clips of distinct lengths, two accents, every fourth utterance in French."""
    return tone_corpus(tmp_path, 12, french_every=4)


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, KEY)
    return KEY


def aai_config(tmp_path: Path, corpus: Path, url: str, **options: object):
    backend = {"name": "assemblyai", "base_url": url, "api_key_env": ENV, **FAST_POLL, **options}
    return load_config(write_config(tmp_path / "run.yaml", corpus, backend, max_failure_rate=0.5))


def test_jobs_are_uploaded_submitted_polled_to_completion_and_deleted(tmp_path, corpus, oracle, api_key):
    app = assemblyai_app(oracle, api_key=KEY)
    with LoopbackServer(app) as server:
        outcome = run(prepare(aai_config(tmp_path, corpus, server.url)))
    assert outcome.metrics["overall"]["wer"] == 0.0
    assert outcome.metrics["failures"]["count"] == 0

    state = app.state
    assert len(state.uploads) == len(state.submitted) == len(state.jobs) == 12
    for headers in state.upload_headers:
        assert headers["authorization"] == KEY  # the bare key, no scheme
        assert headers["content-type"] == "application/octet-stream"
    for wav in state.uploads.values():
        info = sf.info(io.BytesIO(wav))
        assert (info.format, info.subtype, info.samplerate) == ("WAV", "PCM_16", 16_000)
    for body in state.submitted:
        assert body["audio_url"] in state.uploads
        assert {k: v for k, v in body.items() if k not in ("audio_url", "language_code")} == {
            "punctuate": False,
            "format_text": False,
        }  # no speech_models unless asked for
    assert Counter(b["language_code"] for b in state.submitted) == {"en": 9, "fr": 3}
    for job in state.jobs.values():
        assert job.served == ["queued", "processing", "completed"]
    assert sorted(state.deletes) == sorted(state.jobs)  # keep: false, so every transcript is deleted once


def test_options_reach_the_request_body_and_keep_leaves_transcripts(tmp_path, corpus, oracle, api_key):
    app = assemblyai_app(oracle, api_key=KEY)
    options = {
        "speech_models": "universal-2",
        "language_code": "en_uk",
        "punctuate": True,
        "format_text": True,
        "keep": True,
        "params": {"keyterms_prompt": ["foxtrot"]},
    }
    with LoopbackServer(app) as server:
        outcome = run(prepare(aai_config(tmp_path, corpus, server.url, **options)))
    assert outcome.metrics["overall"]["wer"] == 0.0
    for body in app.state.submitted:
        assert {k: v for k, v in body.items() if k != "audio_url"} == {
            "speech_models": ["universal-2"],
            "language_code": "en_uk",
            "punctuate": True,
            "format_text": True,
            "keyterms_prompt": ["foxtrot"],
        }
    assert app.state.deletes == []


def test_a_job_that_errors_is_a_failed_utterance_with_its_message(tmp_path, corpus, oracle, api_key):
    def fails_on_alpha(wav: bytes) -> str | None:  # clips 0 and 6: both northern
        text = oracle(wav)
        return None if text.startswith("alpha") else text

    app = assemblyai_app(fails_on_alpha, api_key=KEY, failure="Audio duration is too short.")
    with LoopbackServer(app) as server:
        outcome = run(prepare(aai_config(tmp_path, corpus, server.url)))
    failures = outcome.metrics["failures"]
    assert failures["count"] == 2
    assert failures["examples"][0]["error"] == "RemoteError: transcription failed: Audio duration is too short."
    accent = next(d for d in outcome.metrics["dimensions"] if d["name"] == "accent")
    assert {s["label"]: s["failed"] for s in accent["slices"]} == {"northern": 2, "southern": 0}
    assert len(app.state.submitted) == 12  # a failed job is not resubmitted
    assert app.state.statuses["error"] == 2
    assert sorted(app.state.deletes) == sorted(app.state.jobs)  # failed jobs are deleted too


def test_a_job_still_running_at_the_deadline_fails_and_is_not_deleted(tmp_path, corpus, oracle, api_key):
    app = assemblyai_app(oracle, api_key=KEY, steps=("queued",) * 10_000)
    with LoopbackServer(app) as server:
        outcome = run(prepare(aai_config(tmp_path, corpus, server.url, poll_deadline=0.05)))
    failures = outcome.metrics["failures"]
    assert failures["count"] == 12
    assert "job not finished after 0.05 s" in failures["examples"][0]["error"]
    assert app.state.deletes == []


def test_a_delete_that_fails_is_logged_and_the_transcript_kept(tmp_path, corpus, oracle, api_key, caplog):
    inner = assemblyai_app(oracle, api_key=KEY)

    async def refuses_deletes(scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "DELETE":
            return await JSONResponse({"error": "Internal server error"}, status_code=500)(scope, receive, send)
        return await inner(scope, receive, send)

    with LoopbackServer(refuses_deletes) as server:
        outcome = run(prepare(aai_config(tmp_path, corpus, server.url, max_attempts=2, backoff_initial=0.0)))
    assert outcome.metrics["failures"]["count"] == 0 and outcome.metrics["overall"]["wer"] == 0.0
    warnings = [r.getMessage() for r in caplog.records if "could not delete transcript" in r.getMessage()]
    assert len(warnings) == 12 and "HTTP 500" in warnings[0]


def test_the_fingerprint_holds_what_changes_the_output_and_nothing_else(monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    registry = Registry.default()

    def fingerprint(**options: object) -> dict:
        backend = registry.create("assemblyai", {"api_key_env": ENV, **options})
        try:
            return backend.fingerprint()
        finally:
            backend.close()

    base = fingerprint()
    assert base == {
        "engine": "assemblyai",
        "base_url": "https://api.assemblyai.com",
        "speech_models": None,
        "language_code": None,
        "punctuate": False,
        "format_text": False,
        "params": {},
    }
    assert KEY not in json.dumps(base)
    assert fingerprint(concurrency=64, rate_limit=5, timeout=10, keep=True, poll_initial=2, poll_deadline=60) == base
    for changed in (
        {"speech_models": ["universal-2"]},
        {"language_code": "en_us"},
        {"punctuate": True},
        {"format_text": True},
        {"base_url": "https://api.eu.assemblyai.com"},
        {"params": {"keyterms_prompt": ["alpha"]}},
    ):
        assert fingerprint(**changed) != base, changed
    assert fingerprint(speech_models="universal-2") == fingerprint(speech_models=["universal-2"])


def test_bad_options_and_a_missing_key_are_one_line_config_errors(monkeypatch):
    registry = Registry.default()
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    with pytest.raises(BackendUnavailable, match="ASSEMBLYAI_API_KEY is not set"):
        registry.create("assemblyai", {})
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", KEY)
    with pytest.raises(BackendUnavailable, match="unknown key"):
        registry.create("assemblyai", {"speech_model": "universal-2"})  # deprecated by AssemblyAI
    with pytest.raises(BackendUnavailable, match="audio_url: set as backend options"):
        registry.create("assemblyai", {"params": {"audio_url": "https://example.com/a.wav"}})
    with pytest.raises(BackendUnavailable, match="poll_max must be at least poll_initial"):
        registry.create("assemblyai", {"poll_initial": 5, "poll_max": 1})
