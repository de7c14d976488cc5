"""The deepgram backend through the real pipeline against a loopback fake of ``POST /v1/listen``: its
query string, languages, answers and options (the shared contract: test_backend_contract.py)."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf
from conftest import write_config
from fakes.deepgram import deepgram_app
from loopback import LoopbackServer, tone_corpus
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
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, KEY)
    return KEY


def deepgram_config(tmp_path: Path, corpus: Path, url: str, **options: object):
    backend = {"name": "deepgram", "base_url": url, "api_key_env": ENV, **options}
    return load_config(write_config(tmp_path / "run.yaml", corpus, backend, max_failure_rate=0.5))


def test_each_request_is_what_deepgram_expects(tmp_path, corpus, oracle, api_key):
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
