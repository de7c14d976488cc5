"""google-speech against a loopback Speech-to-Text v2 server: the request the API expects, results
joined, no results as silence, credentials from env or ADC. What every remote backend does (retries,
per-utterance failures, tokens, secrets, fingerprint) is in test_backend_contract.py."""

from __future__ import annotations

import base64
import json
import sys
import time
import types
from pathlib import Path

import pandas as pd
import pytest
from conftest import write_config, write_jsonl, write_tone
from fakes.google_speech import google_speech_app
from loopback import LoopbackServer, tone_clips

from harness.backends.base import Registry
from harness.backends.google_speech import SCOPE
from harness.config import load_config
from harness.errors import BackendUnavailable
from harness.pipeline import prepare, run

TOKEN = "ya29.a0-test-token-do-not-leak"
ENV = "ASRFAIR_TEST_GOOGLE_TOKEN"


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, TOKEN)
    return TOKEN


def google_config(tmp_path: Path, corpus: Path, url: str, **options: object):
    backend = {"name": "google-speech", "project": "proj-1", "base_url": url, "access_token_env": ENV, **options}
    return load_config(write_config(tmp_path / "run.yaml", corpus, backend, max_failure_rate=0.5))


def transcripts(outcome) -> pd.DataFrame:
    return pd.read_parquet(outcome.paths.transcripts).set_index("id")


def recording_bodies(app, bodies: list[dict]):
    """The app, keeping each request's JSON body as the server received it."""

    async def keeps_bodies(scope, receive, send):
        chunks: list[bytes] = []

        async def recording_receive():
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                bodies.append(json.loads(b"".join(chunks)))
            return message

        return await app(scope, recording_receive, send)

    return keeps_bodies


def test_transcripts_are_correct_and_the_request_is_what_the_api_expects(tmp_path, corpus, oracle, token):
    app = google_speech_app(oracle, token=TOKEN)
    bodies: list[dict] = []
    with LoopbackServer(recording_bodies(app, bodies)) as server:
        outcome = run(prepare(google_config(tmp_path, corpus, server.url)))
    assert outcome.metrics["failures"]["count"] == 0
    assert outcome.metrics["overall"]["wer"] == 0.0  # two results per clip, joined with a space
    assert len(app.state.requests) == 12
    sent = app.state.requests[0]
    assert sent["path_params"] == {"project": "proj-1", "location": "global", "recognizer": "_"}
    assert sent["config"] == {"autoDecodingConfig": {}, "languageCodes": ["en-US"], "model": "long"}
    assert sent["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert sent["headers"]["content-type"] == "application/json"
    assert "x-goog-user-project" not in sent["headers"]
    assert sorted(bodies[0]) == ["config", "content"]  # nothing else: no uri, no features
    assert sorted(base64.b64decode(b["content"]) for b in bodies) == sorted(oracle.heard)
    assert transcripts(outcome).loc["u00", "text"] == "alpha bravo charlie delta"


def test_options_reach_the_request(tmp_path, corpus, oracle, token):
    app = google_speech_app(oracle, token=TOKEN)
    with LoopbackServer(app) as server:
        config = google_config(
            tmp_path,
            corpus,
            server.url,
            location="europe-west2",
            recognizer="accents",
            model="chirp_2",
            language_codes=["en-GB"],
            quota_project="billing-proj",
        )
        outcome = run(prepare(config))
    assert outcome.metrics["overall"]["wer"] == 0.0
    sent = app.state.requests[0]
    assert sent["path_params"] == {"project": "proj-1", "location": "europe-west2", "recognizer": "accents"}
    assert sent["config"]["model"] == "chirp_2" and sent["config"]["languageCodes"] == ["en-GB"]
    assert sent["headers"]["x-goog-user-project"] == "billing-proj"


def test_regional_locations_use_their_own_endpoint(token):
    registry = Registry.default()
    regional = registry.create("google-speech", {"project": "p", "location": "europe-west4", "access_token_env": ENV})
    assert regional._url == (
        "https://europe-west4-speech.googleapis.com/v2/projects/p/locations/europe-west4/recognizers/_:recognize"
    )
    default = registry.create("google-speech", {"project": "p", "access_token_env": ENV})
    assert default._url == "https://speech.googleapis.com/v2/projects/p/locations/global/recognizers/_:recognize"


def test_the_fingerprint_names_the_default_model_and_not_the_quota_project(token):
    registry = Registry.default()
    base = {"project": "p", "access_token_env": ENV}
    one = registry.create("google-speech", base)
    billed = registry.create("google-speech", {**base, "quota_project": "q"})  # who pays, not what is heard
    assert one.fingerprint_id() == billed.fingerprint_id()
    fingerprint = one.fingerprint()
    assert fingerprint["model"] == "long" and fingerprint["recognizer"] == "_"


def test_bare_and_regional_languages_become_locales(tmp_path, token):
    clips = tone_clips(tmp_path / "audio", ["a", "b", "c"])
    languages = ["en", "en_GB", "xx"]
    records = [
        {"id": f"u{i}", "audio": str(clip), "text": "alpha bravo", "speaker": "s", "language": lang}
        for i, (clip, lang) in enumerate(zip(clips, languages, strict=True))
    ]
    corpus = write_jsonl(tmp_path / "manifest.jsonl", records)
    app = google_speech_app(lambda wav: "alpha bravo", token=TOKEN)
    with LoopbackServer(app) as server:
        outcome = run(prepare(google_config(tmp_path, corpus, server.url, max_attempts=1)))
    assert sorted(r["config"]["languageCodes"][0] for r in app.state.requests) == ["en-GB", "en-US"]
    table = transcripts(outcome)
    assert table.loc["u2", "status"] == "error" and "language 'xx' is not a locale" in table.loc["u2", "error"]


def test_no_results_is_an_empty_transcript_not_a_failure(tmp_path, corpus, oracle, token):
    def deaf_to_alpha(wav: bytes) -> str:  # clips 0 and 6
        text = oracle(wav)
        return "" if text.startswith("alpha") else text

    with LoopbackServer(google_speech_app(deaf_to_alpha, token=TOKEN)) as server:
        outcome = run(prepare(google_config(tmp_path, corpus, server.url)))
    assert outcome.metrics["failures"]["count"] == 0
    table = transcripts(outcome)
    assert (table.loc[["u00", "u06"], "status"] == "ok").all()
    assert (table.loc[["u00", "u06"], "text"] == "").all()
    assert outcome.metrics["overall"]["wer"] > 0  # scored as deletions


def test_a_clip_over_a_minute_fails_without_a_request(tmp_path, token):
    clips = [write_tone(tmp_path / "audio" / "short.wav", 0.4), write_tone(tmp_path / "audio" / "long.wav", 60.5)]
    records = [
        {"id": name, "audio": str(clip), "text": "alpha bravo", "speaker": "s"}
        for name, clip in zip(["short", "long"], clips, strict=True)
    ]
    corpus = write_jsonl(tmp_path / "manifest.jsonl", records)
    app = google_speech_app(lambda wav: "alpha bravo", token=TOKEN)
    with LoopbackServer(app) as server:
        outcome = run(prepare(google_config(tmp_path, corpus, server.url)))
    assert len(app.state.requests) == 1
    table = transcripts(outcome)
    assert table.loc["short", "status"] == "ok"
    assert table.loc["long", "status"] == "error" and "clip is 60.5 s" in table.loc["long", "error"]


def test_without_a_token_or_google_auth_the_error_says_what_to_set(tmp_path, corpus, monkeypatch):
    monkeypatch.delenv("GOOGLE_OAUTH_ACCESS_TOKEN", raising=False)
    monkeypatch.setitem(sys.modules, "google.auth", None)  # as if google-auth were not installed
    backend = {"name": "google-speech", "project": "proj-1"}
    config = load_config(write_config(tmp_path / "run.yaml", corpus, backend))
    with pytest.raises(BackendUnavailable, match="export GOOGLE_OAUTH_ACCESS_TOKEN") as caught:
        prepare(config)
    assert "google-auth" in str(caught.value) and "\n" not in str(caught.value)


class FakeCredentials:
    def __init__(self, token: str | None, fail: bool = False) -> None:
        self._next, self.token, self.fail, self.refreshes = token, None, fail, 0

    @property
    def valid(self) -> bool:
        return self.token is not None

    def refresh(self, request: object) -> None:
        self.refreshes += 1
        time.sleep(0.05)  # a network round trip, during which other requests wait for this refresh
        if self.fail:
            raise sys.modules["google.auth.exceptions"].RefreshError("invalid_grant: Token has been expired")
        self.token = self._next


def fake_google_auth(monkeypatch: pytest.MonkeyPatch, credentials: FakeCredentials) -> list[list[str]]:
    scopes_asked: list[list[str]] = []

    def default(scopes: list[str]) -> tuple[FakeCredentials, str]:
        scopes_asked.append(scopes)
        return credentials, "adc-project"

    exceptions = types.ModuleType("google.auth.exceptions")
    exceptions.DefaultCredentialsError = type("DefaultCredentialsError", (Exception,), {})
    exceptions.RefreshError = type("RefreshError", (Exception,), {})
    auth = types.ModuleType("google.auth")
    auth.default = default
    transport = types.ModuleType("google.auth.transport.requests")
    transport.Request = lambda: object()
    for name, module in [
        ("google.auth", auth),
        ("google.auth.exceptions", exceptions),
        ("google.auth.transport", types.ModuleType("google.auth.transport")),
        ("google.auth.transport.requests", transport),
    ]:
        monkeypatch.setitem(sys.modules, name, module)
    return scopes_asked


def test_application_default_credentials_are_refreshed_once_and_used(tmp_path, corpus, oracle, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    credentials = FakeCredentials(TOKEN)
    scopes = fake_google_auth(monkeypatch, credentials)
    app = google_speech_app(oracle, token=TOKEN)
    with LoopbackServer(app) as server:
        outcome = run(prepare(google_config(tmp_path, corpus, server.url, concurrency=6)))
    assert scopes == [[SCOPE]]
    assert credentials.refreshes == 1
    assert outcome.metrics["failures"]["count"] == 0 and outcome.metrics["overall"]["wer"] == 0.0
    assert all(r["headers"]["authorization"] == f"Bearer {TOKEN}" for r in app.state.requests)
    for path in outcome.paths.root.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_refused_application_default_credentials_stop_the_run(tmp_path, corpus, oracle, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    fake_google_auth(monkeypatch, FakeCredentials(TOKEN, fail=True))
    with LoopbackServer(google_speech_app(oracle, token=TOKEN)) as server:
        prepared = prepare(google_config(tmp_path, corpus, server.url))
        with pytest.raises(BackendUnavailable, match="Application Default Credentials were refused"):
            run(prepared)
