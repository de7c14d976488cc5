"""The deepgram backend through the real pipeline against a loopback fake of ``POST /v1/listen``."""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf
from conftest import write_config
from fakes.deepgram import deepgram_app
from loopback import Faults, LoopbackServer, Oracle, tone_corpus
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.backends.base import Registry
from harness.config import load_config
from harness.errors import BackendUnavailable
from harness.pipeline import prepare, run

KEY = "dg-test-5e1b77c0-do-not-leak"
ENV = "ASRFAIR_DEEPGRAM_TEST_KEY"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """12 tone clips of distinct lengths, two accents, every fourth utterance in French."""
    return tone_corpus(tmp_path, 12, french_every=4)


@pytest.fixture
def oracle(corpus: Path) -> Oracle:
    return Oracle.for_manifest(corpus)


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, KEY)
    return KEY


def deepgram_config(tmp_path: Path, corpus: Path, url: str, **options: object):
    backend = {"name": "deepgram", "base_url": url, "api_key_env": ENV, **options}
    return load_config(write_config(tmp_path / "run.yaml", corpus, backend, max_failure_rate=0.5))


def test_transcripts_are_exact_and_each_request_is_what_deepgram_expects(tmp_path, corpus, oracle, api_key, caplog):
    caplog.set_level(logging.DEBUG)
    app = deepgram_app(oracle, api_key=KEY)
    with LoopbackServer(app) as server:
        outcome = run(prepare(deepgram_config(tmp_path, corpus, server.url)))
    assert outcome.metrics["overall"]["wer"] == 0.0
    assert outcome.metrics["failures"]["count"] == 0
    requests = app.state.requests
    assert len(requests) == 12
    for request in requests:
        assert request["authorization"] == f"Token {KEY}"
        assert request["content_type"] == "audio/wav"
        assert {k: v for k, v in request["query"].items() if k != "language"} == {
            "model": "nova-2",
            "smart_format": "false",
            "punctuate": "false",
        }
    assert Counter(r["query"]["language"] for r in requests) == {"en": 9, "fr": 3}  # each utterance's own
    for wav in oracle.heard:  # the raw body is the clip as 16-bit PCM WAV
        info = sf.info(io.BytesIO(wav))
        assert (info.format, info.subtype, info.samplerate) == ("WAV", "PCM_16", 16_000)
    for path in [*outcome.paths.root.rglob("*"), *(tmp_path / "runs" / ".cache").rglob("*")]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in caplog.text


def test_options_reach_the_query_string(tmp_path, corpus, oracle, api_key):
    app = deepgram_app(oracle, api_key=KEY)
    params = {"version": "latest", "keyterm": ["alpha", "foxtrot"], "numerals": False}
    with LoopbackServer(app) as server:
        config = deepgram_config(
            tmp_path,
            corpus,
            server.url,
            model="nova-3",
            language="en-GB",
            smart_format=True,
            punctuate=True,
            params=params,
        )
        outcome = run(prepare(config))
    assert outcome.metrics["overall"]["wer"] == 0.0
    for request in app.state.requests:
        items = request["query_items"]
        assert sorted(items) == sorted(
            [
                ("model", "nova-3"),
                ("language", "en-GB"),
                ("smart_format", "true"),
                ("punctuate", "true"),
                ("version", "latest"),
                ("keyterm", "alpha"),
                ("keyterm", "foxtrot"),
                ("numerals", "false"),
            ]
        )


def test_500s_429s_and_slow_answers_are_retried_until_every_utterance_succeeds(tmp_path, corpus, oracle, api_key):
    faults = Faults(error_500=0.2, error_429=0.2, slow=0.1, slow_seconds=0.6, retry_after=0.01, seed=5)
    app = deepgram_app(oracle, api_key=KEY)
    with LoopbackServer(faults.wrap(app)) as server:
        config = deepgram_config(
            tmp_path, corpus, server.url, timeout=0.4, max_attempts=10, backoff_initial=0.01, concurrency=6
        )
        outcome = run(prepare(config))
    assert outcome.metrics["failures"]["count"] == 0
    assert outcome.metrics["overall"]["wer"] == 0.0
    for kind in ("500", "429", "slow"):
        assert faults.seen[kind] > 0, kind


def test_a_server_error_fails_only_that_utterance_with_the_message(tmp_path, corpus, oracle, api_key):
    def fails_on_alpha(wav: bytes) -> str | None:  # clips 0 and 6: both northern
        text = oracle(wav)
        return None if text.startswith("alpha") else text

    with LoopbackServer(deepgram_app(fails_on_alpha, api_key=KEY)) as server:
        outcome = run(prepare(deepgram_config(tmp_path, corpus, server.url, max_attempts=2, backoff_initial=0.0)))
    failures = outcome.metrics["failures"]
    assert failures["count"] == 2
    message = failures["examples"][0]["error"]
    assert "HTTP 500" in message and "INTERNAL_SERVER_ERROR" in message and "gave up after 2 attempts" in message
    accent = next(d for d in outcome.metrics["dimensions"] if d["name"] == "accent")
    assert {s["label"]: s["failed"] for s in accent["slices"]} == {"northern": 2, "southern": 0}


def test_a_wrong_key_stops_the_run_without_echoing_it(tmp_path, corpus, oracle, monkeypatch):
    wrong = "dg-wrong-key-31337-abcdef"
    monkeypatch.setenv(ENV, wrong)
    with LoopbackServer(deepgram_app(oracle, api_key=KEY)) as server:
        prepared = prepare(deepgram_config(tmp_path, corpus, server.url))
        with pytest.raises(BackendUnavailable, match="HTTP 401") as caught:
            run(prepared)
    assert "Invalid credentials" in str(caught.value)
    assert wrong not in str(caught.value) and KEY not in str(caught.value)


def test_an_unexpected_answer_is_a_failure_naming_the_missing_field(tmp_path, corpus, api_key):
    async def empty(request):
        return JSONResponse({"metadata": {}, "results": {"channels": []}})

    with LoopbackServer(Starlette(routes=[Route("/v1/listen", empty, methods=["POST"])])) as server:
        outcome = run(prepare(deepgram_config(tmp_path, corpus, server.url)))
    assert outcome.metrics["failures"]["count"] == 12
    assert "unexpected response: no 'results.channels.0'" in outcome.metrics["failures"]["examples"][0]["error"]


def test_a_self_hosted_server_without_auth_gets_no_authorization_header(tmp_path, corpus, oracle, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    app = deepgram_app(oracle, api_key=None)
    with LoopbackServer(app) as server:
        outcome = run(prepare(deepgram_config(tmp_path, corpus, server.url, api_key_env=None)))
    assert outcome.metrics["overall"]["wer"] == 0.0
    assert all(r["authorization"] is None for r in app.state.requests)


def test_the_fingerprint_holds_what_changes_the_output_and_nothing_else(monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    monkeypatch.setenv("OTHER_DEEPGRAM_KEY", "another-key")
    registry = Registry.default()

    def fingerprint(**options: object) -> dict:
        backend = registry.create("deepgram", {"api_key_env": ENV, **options})
        try:
            return backend.fingerprint()
        finally:
            backend.close()

    base = fingerprint()
    assert base == {
        "engine": "deepgram",
        "base_url": "https://api.deepgram.com",
        "model": "nova-2",
        "language": None,
        "smart_format": False,
        "punctuate": False,
        "params": {},
    }
    assert KEY not in json.dumps(base)
    assert fingerprint(concurrency=64, rate_limit=5, timeout=10, max_attempts=2) == base
    assert fingerprint(api_key_env="OTHER_DEEPGRAM_KEY") == base
    assert fingerprint(base_url="https://api.deepgram.com/") == base
    for changed in ({"model": "nova-3"}, {"language": "en-US"}, {"smart_format": True}, {"punctuate": True}):
        assert fingerprint(**changed) != base, changed
    assert fingerprint(params={"version": "2024-01-09"}) != base


def test_bad_options_and_a_missing_key_are_one_line_config_errors(monkeypatch):
    registry = Registry.default()
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    with pytest.raises(BackendUnavailable, match="DEEPGRAM_API_KEY is not set"):
        registry.create("deepgram", {})
    monkeypatch.setenv("DEEPGRAM_API_KEY", KEY)
    with pytest.raises(BackendUnavailable, match="set model as backend options"):
        registry.create("deepgram", {"params": {"model": "nova-3"}})
    with pytest.raises(BackendUnavailable, match="unknown key"):
        registry.create("deepgram", {"smartformat": True})
