"""The contract every remote backend keeps, run against each one's loopback fake (tests/fakes/).

Each backend is one :class:`Remote` in ``REMOTES``: how to start its fake, the options that point
the backend at it, where its secret goes on the wire, and the words its API uses for a server error
and for a rejected key. Every test here runs once per backend:

- exact transcripts through the real pipeline, one request per clip, the secret written nowhere;
- 500s, 429s (with Retry-After), slow answers and dropped connections retried to success;
- a clip the server fails is that utterance's failure, with the API's message, counted in its slice;
- a rejected key stops the run (BackendUnavailable, HTTP 401) without echoing any key;
- a server that quotes the secret back in an error body: redacted in messages, files and logs;
- a missing key variable is a one-line config error naming it;
- the fingerprint changes with what shapes the output, not with transport settings, and holds no secret.

Wire-format specifics (query strings, bodies, job lifecycles, locales) stay in test_backend_<name>.py
and test_remote_backends.py (the shared machinery through openai-compatible: concurrency, rate limit,
cache). A new remote backend adds a fake in tests/fakes/ and one ``Remote`` here.
aws-transcribe (S3 uploads through moto, signed requests) keeps its own suite in test_backend_aws_transcribe.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import write_config
from fakes.assemblyai import assemblyai_app
from fakes.azure_speech import azure_speech_app
from fakes.deepgram import deepgram_app
from fakes.google_speech import google_speech_app
from fakes.openai import openai_app
from loopback import Faults, LoopbackServer
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from harness.backends.base import Registry
from harness.config import load_config
from harness.errors import BackendUnavailable
from harness.pipeline import RunOutcome, prepare, run

Recogniser = Callable[[bytes], str | None]


@dataclass(frozen=True)
class Remote:
    """One remote backend as the contract sees it."""

    name: str  # the registry name
    secret: str  # the key or token the fake accepts
    env: str  # the variable the tests put the secret in
    secret_option: str  # the option naming that variable
    fake: Callable[[Recogniser, str], ASGIApp]  # (recogniser, secret) -> the fake API
    options: Callable[[str], dict[str, Any]]  # server URL -> backend options other than name and secret
    auth_header: str  # the request header carrying the secret
    auth_value: Callable[[str], str]  # secret -> that header's value
    requests: Callable[[Any], int]  # the fake's app.state -> recognition requests it answered
    server_error: tuple[str, ...]  # what the failure message of a clip the server failed contains
    rejected: tuple[str, ...]  # what the message of a rejected key contains
    retries_server_errors: bool = True  # a job API reports a failed job once, as an answer: no retry
    default_env: str | None = None  # the variable read when the config names none (None: not key-based)
    minimal: dict[str, Any] = field(default_factory=dict)  # options enough to create it outside a run
    output_changes: tuple[dict[str, Any], ...] = ()  # options that each change what it returns
    after_run: Callable[[Any], None] = lambda state: None  # backend-specific checks on a clean run


def _assemblyai_cleaned_up(state: Any) -> None:
    finished = {job.id for job in state.jobs.values() if job.served and job.served[-1] == "completed"}
    assert len(finished) == 12 and finished <= set(state.deletes)  # every transcript deleted (keep: false)


REMOTES = [
    Remote(
        name="openai-compatible",
        secret="sk-test-7f3a9c-do-not-leak",
        env="ASRFAIR_TEST_OPENAI_KEY",
        secret_option="api_key_env",
        fake=lambda recognise, key: openai_app(recognise, api_key=key),
        options=lambda url: {"base_url": f"{url}/v1"},
        auth_header="authorization",
        auth_value=lambda key: f"Bearer {key}",
        requests=lambda state: len(state.forms),
        server_error=("HTTP 500", "gave up after 2 attempts"),
        rejected=("Incorrect API key provided",),
        default_env="OPENAI_API_KEY",
        output_changes=({"model": "whisper-large-v3"}, {"prompt": "NATO"}, {"base_url": "https://example.com/v1"}),
    ),
    Remote(
        name="deepgram",
        secret="dg-test-5e1b77c0-do-not-leak",
        env="ASRFAIR_DEEPGRAM_TEST_KEY",
        secret_option="api_key_env",
        fake=lambda recognise, key: deepgram_app(recognise, api_key=key),
        options=lambda url: {"base_url": url},
        auth_header="authorization",
        auth_value=lambda key: f"Token {key}",
        requests=lambda state: len(state.requests),
        server_error=("HTTP 500", "INTERNAL_SERVER_ERROR", "gave up after 2 attempts"),
        rejected=("Invalid credentials",),
        default_env="DEEPGRAM_API_KEY",
        output_changes=({"model": "nova-3"}, {"language": "en-US"}, {"smart_format": True}),
    ),
    Remote(
        name="assemblyai",
        secret="aai-test-9c04e2f1-do-not-leak",
        env="ASRFAIR_ASSEMBLYAI_TEST_KEY",
        secret_option="api_key_env",
        fake=lambda recognise, key: assemblyai_app(recognise, api_key=key, failure="Audio duration is too short."),
        options=lambda url: {"base_url": url, "poll_initial": 0.01, "poll_max": 0.02},
        auth_header="authorization",
        auth_value=lambda key: key,  # the bare key, no scheme
        requests=lambda state: len(state.submitted),
        server_error=("RemoteError: transcription failed: Audio duration is too short.",),
        rejected=("API token missing/invalid",),
        retries_server_errors=False,
        default_env="ASSEMBLYAI_API_KEY",
        output_changes=({"speech_models": ["universal-2"]}, {"language_code": "en_us"}, {"punctuate": True}),
        after_run=_assemblyai_cleaned_up,
    ),
    Remote(
        name="google-speech",
        secret="ya29.a0-test-token-do-not-leak",
        env="ASRFAIR_TEST_GOOGLE_TOKEN",
        secret_option="access_token_env",
        fake=lambda recognise, token: google_speech_app(recognise, token=token),
        options=lambda url: {"project": "proj-1", "base_url": url},
        auth_header="authorization",
        auth_value=lambda token: f"Bearer {token}",
        requests=lambda state: len(state.requests),
        server_error=("HTTP 500", "INTERNAL", "gave up after 2 attempts"),
        rejected=("UNAUTHENTICATED", "expire"),
        minimal={"project": "p"},
        output_changes=({"model": "short"}, {"recognizer": "accents"}, {"location": "europe-west4"}),
    ),
    Remote(
        name="azure-speech",
        secret="azkey-0c1d2e3f-do-not-leak",
        env="ASRFAIR_TEST_AZURE_KEY",
        secret_option="api_key_env",
        fake=lambda recognise, key: azure_speech_app(recognise, key=key),
        options=lambda url: {"base_url": url},
        auth_header="ocp-apim-subscription-key",
        auth_value=lambda key: key,
        requests=lambda state: len(state.requests),
        server_error=("RecognitionStatus Error", "gave up after 2 attempts"),
        rejected=("invalid subscription key",),
        default_env="AZURE_SPEECH_KEY",
        minimal={"region": "eastus"},
        output_changes=({"profanity": "masked"}, {"region": "westus"}, {"language": "en-GB"}),
    ),
]


@pytest.fixture(params=REMOTES, ids=[remote.name for remote in REMOTES])
def remote(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Remote:
    """Each backend in turn, its secret in its variable."""
    spec: Remote = request.param
    monkeypatch.setenv(spec.env, spec.secret)
    return spec


def configure(remote: Remote, tmp_path: Path, corpus: Path, url: str, **options: object):
    backend = {"name": remote.name, remote.secret_option: remote.env, **remote.options(url), **options}
    return load_config(write_config(tmp_path / "run.yaml", corpus, backend, max_failure_rate=0.5))


def assert_secret_nowhere(secret: str, outcome: RunOutcome, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for path in [*outcome.paths.root.rglob("*"), *(tmp_path / "runs" / ".cache").rglob("*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in caplog.text


def failed_by_accent(outcome: RunOutcome) -> dict[str, int]:
    accent = next(d for d in outcome.metrics["dimensions"] if d["name"] == "accent")
    return {s["label"]: s["failed"] for s in accent["slices"]}


def test_transcripts_are_exact_and_the_secret_is_written_nowhere(tmp_path, corpus, oracle, remote, caplog):
    caplog.set_level(logging.DEBUG)
    app = remote.fake(oracle, remote.secret)
    with LoopbackServer(app) as server:
        outcome = run(prepare(configure(remote, tmp_path, corpus, server.url)))
    assert outcome.metrics["failures"]["count"] == 0
    assert outcome.metrics["overall"]["wer"] == 0.0
    assert remote.requests(app.state) == 12 == len(oracle.heard)  # one recognition per clip
    remote.after_run(app.state)
    assert_secret_nowhere(remote.secret, outcome, tmp_path, caplog)


def test_faults_are_retried_until_every_utterance_succeeds(tmp_path, corpus, oracle, remote):
    # seed 29: every kind among the first 10 draws, so each is seen whatever the request order
    faults = Faults(error_500=0.15, error_429=0.15, slow=0.08, drop=0.08, slow_seconds=10, retry_after=0.01, seed=29)
    app = remote.fake(oracle, remote.secret)
    with LoopbackServer(faults.wrap(app)) as server:
        # a slow answer (10 s) always times out; an ordinary one that load delays past 2 s is retried too
        options = {"timeout": 2.0, "max_attempts": 12, "backoff_initial": 0.01, "concurrency": 4}
        outcome = run(prepare(configure(remote, tmp_path, corpus, server.url, **options)))
    assert outcome.metrics["failures"]["count"] == 0
    assert outcome.metrics["overall"]["wer"] == 0.0
    for kind in ("500", "429", "slow", "drop"):
        assert faults.seen[kind] > 0, kind
    remote.after_run(app.state)


def test_a_clip_the_server_fails_is_that_utterances_failure_in_its_slice(tmp_path, corpus, oracle, remote):
    def fails_on_alpha(wav: bytes) -> str | None:  # clips 0 and 6: both northern
        text = oracle(wav)
        return None if text.startswith("alpha") else text

    app = remote.fake(fails_on_alpha, remote.secret)
    with LoopbackServer(app) as server:
        config = configure(remote, tmp_path, corpus, server.url, max_attempts=2, backoff_initial=0.0)
        outcome = run(prepare(config))
    failures = outcome.metrics["failures"]
    assert failures["count"] == 2
    for fragment in remote.server_error:
        assert fragment in failures["examples"][0]["error"], failures["examples"][0]["error"]
    assert failed_by_accent(outcome) == {"northern": 2, "southern": 0}
    tries = 2 if remote.retries_server_errors else 1
    assert remote.requests(app.state) == 10 + 2 * tries  # the others once each


def test_a_rejected_key_stops_the_run_without_echoing_any_key(tmp_path, corpus, oracle, remote, monkeypatch):
    wrong = "wrong-key-31337-abcdef"
    monkeypatch.setenv(remote.env, wrong)
    with LoopbackServer(remote.fake(oracle, remote.secret)) as server:
        prepared = prepare(configure(remote, tmp_path, corpus, server.url))
        with pytest.raises(BackendUnavailable, match="HTTP 401") as caught:
            run(prepared)
    message = str(caught.value)
    assert wrong not in message and remote.secret not in message
    for fragment in remote.rejected:
        assert fragment in message, message
    assert "\n" not in message


def test_a_secret_quoted_back_by_the_server_is_redacted_everywhere(tmp_path, corpus, oracle, remote, caplog):
    """Secret in the environment only: not in the run directory, cache, logs or failure messages,
    even when a server quotes the request's credential header back in its error body."""
    inner = remote.fake(oracle, remote.secret)
    served: list[str] = []

    async def echoes_credentials(scope, receive, send):
        served.append(scope["path"])
        if len(served) % 3 == 0:
            given = dict(scope["headers"]).get(remote.auth_header.encode(), b"").decode()
            body = {"error": {"code": 400, "message": f"bad request with {given}"}}
            return await JSONResponse(body, status_code=400)(scope, receive, send)
        return await inner(scope, receive, send)

    caplog.set_level(logging.DEBUG)
    with LoopbackServer(echoes_credentials) as server:
        outcome = run(prepare(configure(remote, tmp_path, corpus, server.url)))
    failures = outcome.metrics["failures"]
    quoted = f"bad request with {remote.auth_value(remote.secret).replace(remote.secret, '***')}"
    assert failures["count"] > 0 and quoted in failures["examples"][0]["error"], failures["examples"][0]
    assert_secret_nowhere(remote.secret, outcome, tmp_path, caplog)


@pytest.mark.parametrize("key_based", [r for r in REMOTES if r.default_env], ids=lambda r: r.name)
def test_a_missing_key_variable_is_a_one_line_config_error(tmp_path, corpus, key_based, monkeypatch):
    monkeypatch.delenv(key_based.default_env, raising=False)
    backend = {"name": key_based.name, **key_based.minimal}
    with pytest.raises(BackendUnavailable, match=f"{key_based.default_env} is not set") as caught:
        prepare(load_config(write_config(tmp_path / "run.yaml", corpus, backend)))
    assert "\n" not in str(caught.value)


def test_the_fingerprint_follows_the_output_not_the_transport_and_holds_no_secret(remote):
    registry = Registry.default()

    def fingerprint(**options: object) -> tuple[str, dict]:
        backend = registry.create(remote.name, {remote.secret_option: remote.env, **remote.minimal, **options})
        try:
            return backend.fingerprint_id(), backend.fingerprint()
        finally:
            backend.close()

    base_id, base = fingerprint()
    assert remote.secret not in json.dumps(base)
    transport = {"concurrency": 40, "rate_limit": 3, "timeout": 9, "max_attempts": 2, "backoff_initial": 0.5}
    assert fingerprint(**transport)[0] == base_id
    for changed in remote.output_changes:
        assert fingerprint(**changed)[0] != base_id, changed
