"""The machinery every remote backend shares, exercised through openai-compatible against a real
loopback server: concurrency, rate limiting, Retry-After, failures per slice, caching. The contract
each backend keeps on its own fake (retries, keys, secrets, fingerprint) is test_backend_contract.py."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_config
from fakes.openai import openai_app
from loopback import Faults, InFlight, LoopbackServer, tone_corpus

from harness.backends.base import Registry
from harness.backends.remote import retry_after_seconds, wav_bytes
from harness.config import load_config
from harness.errors import TooManyFailures
from harness.pipeline import prepare, run

KEY = "sk-test-7f3a9c-do-not-leak"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """24 tone clips of distinct lengths, two accents, three speakers each."""
    return tone_corpus(tmp_path, 24)


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ASRFAIR_TEST_KEY", KEY)
    return KEY


def remote_config(tmp_path: Path, corpus: Path, url: str, **options: object):
    backend = {"name": "openai-compatible", "base_url": f"{url}/v1", "api_key_env": "ASRFAIR_TEST_KEY", **options}
    return load_config(write_config(tmp_path / "run.yaml", corpus, backend, max_failure_rate=0.5))


def test_transcripts_come_back_in_order_with_the_form_the_api_expects(tmp_path, corpus, oracle, api_key):
    app = openai_app(oracle, api_key=KEY)
    with LoopbackServer(app) as server:
        outcome = run(prepare(remote_config(tmp_path, corpus, server.url, model="whisper-large-v3", prompt="NATO")))
    assert outcome.metrics["overall"]["wer"] == 0.0
    assert outcome.metrics["failures"]["count"] == 0
    assert len(app.state.forms) == 24
    form = app.state.forms[0]
    assert form["model"] == "whisper-large-v3" and form["language"] == "en" and form["prompt"] == "NATO"
    assert form["response_format"] == "json"


def test_failures_are_recorded_per_slice_and_the_run_goes_on(tmp_path, corpus, oracle, api_key):
    def fails_on_alpha(wav: bytes) -> str | None:  # clips 0, 6, 12, 18: all northern
        text = oracle(wav)
        return None if text.startswith("alpha") else text

    with LoopbackServer(openai_app(fails_on_alpha, api_key=KEY)) as server:
        config = remote_config(tmp_path, corpus, server.url, max_attempts=2, backoff_initial=0.0)
        outcome = run(prepare(config))
    failures = outcome.metrics["failures"]
    assert failures["count"] == 4
    assert (
        "HTTP 500" in failures["examples"][0]["error"]
        and "gave up after 2 attempts" in failures["examples"][0]["error"]
    )
    accent = next(d for d in outcome.metrics["dimensions"] if d["name"] == "accent")
    failed = {s["label"]: s["failed"] for s in accent["slices"]}
    assert failed == {"northern": 4, "southern": 0}
    assert (
        "- failure rate by accent: northern 33.3% (4/12), southern 0.0% (0/12)"
        in (outcome.paths.root / "report.md").read_text()
    )
    strict = outcome.__class__(outcome.paths, outcome.metrics, 0, 0, max_failure_rate=0.02)
    with pytest.raises(TooManyFailures, match="4 utterances failed"):
        strict.raise_for_failures()


def _length(wav: bytes) -> int:
    import io

    import soundfile as sf

    return sf.info(io.BytesIO(wav)).frames


def test_a_rerun_is_served_from_the_cache(tmp_path, corpus, oracle, api_key):
    faults = Faults()
    with LoopbackServer(faults.wrap(openai_app(oracle, api_key=KEY))) as server:
        config = remote_config(tmp_path, corpus, server.url)
        first = run(prepare(config))
        second = run(prepare(config))
    assert (first.transcribed, second.transcribed, second.from_cache) == (24, 0, 24)
    assert faults.seen["requests"] == 24


def test_concurrency_is_bounded_and_used(tmp_path, corpus, oracle, api_key):
    counting = InFlight(openai_app(oracle, api_key=KEY), latency=0.05)
    with LoopbackServer(counting) as server:
        run(prepare(remote_config(tmp_path, corpus, server.url, concurrency=5)))
    assert counting.max == 5


def test_rate_limit_and_retry_after_are_honoured(tmp_path, corpus, oracle, api_key):
    with LoopbackServer(openai_app(oracle, api_key=KEY)) as server:
        start = time.perf_counter()
        run(prepare(remote_config(tmp_path, corpus, server.url, rate_limit=8, concurrency=24)))
        elapsed = time.perf_counter() - start
    # The suite's only timings, both lower bounds: load can only lengthen a run, never fail them.
    assert elapsed >= 1.9  # 24 requests at 8/s: a burst of 8, then 16 more at 8 per second

    faults = Faults(error_429=1.0, retry_after=0.4)
    with LoopbackServer(faults.wrap(openai_app(oracle, api_key=KEY))) as server:
        config = remote_config(tmp_path, corpus, server.url, max_attempts=2, backoff_initial=0.0, concurrency=24)
        start = time.perf_counter()
        outcome = run(prepare(config))
        elapsed = time.perf_counter() - start
    assert elapsed >= 0.4  # every second attempt waited for Retry-After, not for the zero backoff
    assert outcome.metrics["failures"]["count"] == 24 and faults.seen["429"] == 48
    assert "HTTP 429" in outcome.metrics["failures"]["examples"][0]["error"]


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds({"retry-after": "2.5"}) == 2.5
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0) == 10.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_the_server_hears_the_simulated_condition(tmp_path, corpus, oracle, api_key):
    conditions = [{"name": "clean", "transforms": []}, {"name": "quiet", "transforms": [{"type": "gain", "db": -12}]}]
    with LoopbackServer(openai_app(oracle, api_key=KEY)) as server:
        backend = {"name": "openai-compatible", "base_url": f"{server.url}/v1", "api_key_env": "ASRFAIR_TEST_KEY"}
        config = load_config(write_config(tmp_path / "run.yaml", corpus, backend, conditions=conditions))
        run(prepare(config))
    import io

    import soundfile as sf

    peaks = sorted({round(float(np.abs(sf.read(io.BytesIO(w))[0]).max()), 3) for w in oracle.heard})
    assert peaks == [pytest.approx(0.1 * 10 ** (-12 / 20), abs=1e-3), pytest.approx(0.1, abs=1e-3)]


def test_wav_bytes_are_16_bit_pcm_at_the_request_rate():
    import io

    import soundfile as sf

    info = sf.info(io.BytesIO(wav_bytes(np.zeros(1600, dtype=np.float32), 16_000)))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16_000, 1, "PCM_16", 1600)


def test_every_backend_is_listed_without_importing_its_engine():
    names = Registry.default().names()
    for name in ("openai-compatible", "deepgram", "assemblyai", "google-speech", "azure-speech", "aws-transcribe"):
        assert name in names
