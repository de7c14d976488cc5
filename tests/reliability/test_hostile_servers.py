"""Servers that answer badly on purpose (issue 29): empty or broken 200s, redirects to another host,
endless Retry-After, bodies trickled a byte at a time, answers of hundreds of megabytes, and a
SIGTERM while the run waits. Every case runs the real pipeline against real loopback servers; none
asserts on wall-clock time: each asserts that the run ends, with the documented outcome.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
from cli import start
from conftest import write_config
from fakes.azure_speech import azure_speech_app
from fakes.deepgram import deepgram_app
from fakes.google_speech import google_speech_app
from fakes.openai import openai_app
from loopback import Huge, LoopbackServer, Oracle, Trickle, redirect_app, tone_corpus
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from harness.config import load_config
from harness.pipeline import prepare, run

UTTERANCES = 12
KEY = "hostile-test-key-0123456789"
# The five broken 200 answers the audit found scored as deletions, one per northern clip that starts a word run.
BROKEN = {
    "empty": lambda: JSONResponse({"text": ""}),
    "blank": lambda: JSONResponse({"text": "  \n"}),
    "null": lambda: JSONResponse({"text": None}),
    "missing": lambda: JSONResponse({"transcript": "alpha"}),
    "not json": lambda: Response('{"text": "alpha bra', media_type="application/json"),
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return tone_corpus(tmp_path / "data", UTTERANCES)


def openai_backend(url: str, **options: object) -> dict:
    return {
        "name": "openai-compatible",
        "base_url": f"{url}/v1",
        "api_key_env": None,
        "timeout": 5.0,
        "backoff_initial": 0.01,
        "max_attempts": 2,
        **options,
    }


def run_config(tmp_path: Path, corpus: Path, backend: dict, name: str = "run.yaml", **extra: object):
    return run(prepare(load_config(write_config(tmp_path / name, corpus, backend, max_failure_rate=1.0, **extra))))


def accent_wer(metrics: dict) -> dict[str, float]:
    [accent] = [d for d in metrics["dimensions"] if d["name"] == "accent"]
    return {s["label"]: s["wer"] for s in accent["slices"]}


def transcripts(outcome) -> pd.DataFrame:
    return pd.read_parquet(outcome.paths.transcripts).set_index("id")


def test_empty_or_broken_200s_are_failures_retried_never_scored_or_cached(tmp_path, corpus):
    """A reference-echoing server gives five northern clips a broken 200 (empty, blank, null, missing
    field, not JSON). Before the fix the empty ones were scored as 100 % deletions and cached: northern
    26.6 % against southern 0 %, still after a rerun. Now they fail (each tried max_attempts times),
    no disparity appears, and a rerun against the healed server transcribes exactly those five."""
    oracle = Oracle.for_manifest(corpus)
    starts = ("alpha", "bravo", "charlie")  # tone_corpus's northern clips
    northern = sorted(n for n, text in oracle.texts_by_length.items() if text.split()[0] in starts)
    broken = dict(zip(northern[: len(BROKEN)], BROKEN.values(), strict=True))
    asked: Counter[int] = Counter()  # requests per clip, by its sample count
    healthy = False

    def recognise(wav: bytes) -> str | Response:
        text, length = oracle(wav), len(sf.read(io.BytesIO(wav))[0])
        asked[length] += 1
        return text if healthy or length not in broken else broken[length]()

    with LoopbackServer(openai_app(recognise, api_key=None)) as server:
        first = run_config(tmp_path, corpus, openai_backend(server.url))
        failures = first.metrics["failures"]
        assert failures["count"] == len(BROKEN)
        assert first.metrics["overall"]["wer"] == 0.0
        assert accent_wer(first.metrics) == {"northern": 0.0, "southern": 0.0}  # no disparity manufactured
        assert {n: asked[n] for n in broken} == dict.fromkeys(broken, 2)  # retried: max_attempts each
        errors = " ".join(e["error"] for e in failures["examples"])
        for cause in ("empty transcript", "'text' is not a string", "no 'text'", "not JSON"):
            assert cause in errors, errors
        assert all("gave up after 2 attempts" in e["error"] for e in failures["examples"])

        healthy = True
        asked.clear()
        second = run_config(tmp_path, corpus, openai_backend(server.url))
    assert asked == dict.fromkeys(broken, 1)  # nothing from the broken answers was cached
    assert second.metrics["failures"]["count"] == 0 and second.metrics["overall"]["wer"] == 0.0
    table = transcripts(second)
    assert table["cached"].sum() == UTTERANCES - len(BROKEN)


def test_silence_counts_only_with_the_apis_proof(tmp_path, corpus, monkeypatch):
    """Azure's NoMatch is proof of silence (an empty transcript, scored); Success with an empty
    DisplayText is not (retried, then failed). Google: no results with metadata.totalBilledDuration
    is proof; a bare {} is not."""
    monkeypatch.setenv("HOSTILE_KEY", KEY)
    oracle = Oracle.for_manifest(corpus)

    def deaf_to_alpha(wav: bytes) -> str:
        text = oracle(wav)
        return "" if text.startswith("alpha") else text

    with LoopbackServer(azure_speech_app(deaf_to_alpha, key=KEY, empty_status="NoMatch")) as server:
        azure = {"name": "azure-speech", "base_url": server.url, "api_key_env": "HOSTILE_KEY", "max_attempts": 2}
        proven = run_config(tmp_path, corpus, {**azure, "backoff_initial": 0}, "azure.yaml")
    assert proven.metrics["failures"]["count"] == 0 and proven.metrics["overall"]["wer"] > 0

    async def empty_success(scope: Scope, receive: Receive, send: Send) -> None:
        body = {"RecognitionStatus": "Success", "DisplayText": "", "Offset": 0, "Duration": 0}
        await JSONResponse(body)(scope, receive, send)

    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({})(scope, receive, send)

    for app, backend in (
        (empty_success, {**azure, "backoff_initial": 0}),
        (bare, {"name": "google-speech", "access_token_env": "HOSTILE_KEY", "project": "p", "backoff_initial": 0}),
    ):
        with LoopbackServer(app) as server:
            outcome = run_config(tmp_path, corpus, {**backend, "base_url": server.url, "max_attempts": 2}, "x.yaml")
        assert outcome.metrics["failures"]["count"] == UTTERANCES, backend["name"]
        assert all("empty transcript" in e["error"] for e in outcome.metrics["failures"]["examples"])

    with LoopbackServer(google_speech_app(deaf_to_alpha, token=KEY)) as server:
        google = {"name": "google-speech", "base_url": server.url, "access_token_env": "HOSTILE_KEY", "project": "p"}
        proven = run_config(tmp_path, corpus, google, "google.yaml")
    assert proven.metrics["failures"]["count"] == 0 and proven.metrics["overall"]["wer"] > 0


class Recorder:
    """Middleware: every request that reaches the app, with its headers and body size."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.requests = app, []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests.append(dict(scope["headers"]))
        await self.app(scope, receive, send)


@pytest.mark.parametrize("backend", ["openai-compatible", "deepgram", "azure-speech", "google-speech"])
def test_a_redirect_to_another_origin_gets_neither_the_key_nor_the_audio(tmp_path, corpus, monkeypatch, backend):
    """Server A answers every request with a 307 to server B (another port: another origin). httpx
    would re-send the audio there with every credential header but Authorization; no request may
    reach B, and each utterance fails naming the refused redirect."""
    monkeypatch.setenv("HOSTILE_KEY", KEY)
    oracle = Oracle.for_manifest(corpus)
    apps = {
        "openai-compatible": lambda: openai_app(oracle, api_key=KEY),
        "deepgram": lambda: deepgram_app(oracle, api_key=KEY),
        "azure-speech": lambda: azure_speech_app(oracle, key=KEY),
        "google-speech": lambda: google_speech_app(oracle, token=KEY),
    }
    target = Recorder(apps[backend]())
    with LoopbackServer(target) as b_server:
        redirector = redirect_app(b_server.url)
        with LoopbackServer(redirector) as a_server:
            options = {"name": backend, "base_url": a_server.url, "max_attempts": 2, "backoff_initial": 0}
            options |= {"access_token_env": "HOSTILE_KEY", "project": "p"} if backend == "google-speech" else {}
            options |= {"api_key_env": "HOSTILE_KEY"} if backend != "google-speech" else {}
            if backend == "openai-compatible":
                options["base_url"] += "/v1"
            outcome = run_config(tmp_path, corpus, options)
    assert target.requests == []  # neither key nor audio left for the other origin
    assert redirector.seen["requests"] == UTTERANCES  # refused at once: a redirect is not retried
    failures = outcome.metrics["failures"]
    assert failures["count"] == UTTERANCES
    assert all(f"307 redirect to http://127.0.0.1:{b_server.port} refused" in e["error"] for e in failures["examples"])


def test_a_redirect_within_the_origin_is_followed(tmp_path, corpus):
    oracle = Oracle.for_manifest(corpus)
    inner = openai_app(oracle, api_key=None)

    async def moved(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/old/"):
            query = scope.get("query_string", b"").decode()
            location = scope["path"].removeprefix("/old") + (f"?{query}" if query else "")
            await JSONResponse({}, status_code=308, headers={"Location": location})(scope, receive, send)
            return
        await inner(scope, receive, send)

    with LoopbackServer(moved) as server:
        outcome = run_config(tmp_path, corpus, openai_backend(f"{server.url}/old"))
    assert outcome.metrics["failures"]["count"] == 0 and outcome.metrics["overall"]["wer"] == 0.0


def test_retry_after_infinity_is_capped_and_the_run_ends(tmp_path, corpus):
    """``Retry-After: inf`` on every answer: before the fix the first wait never ended."""

    async def forever(scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "inf"})(
            scope, receive, send
        )

    with LoopbackServer(forever) as server:
        outcome = run_config(tmp_path, corpus, openai_backend(server.url, max_attempts=3, max_retry_after=0.05))
    failures = outcome.metrics["failures"]
    assert failures["count"] == UTTERANCES
    assert all("HTTP 429" in e["error"] and "gave up after 3 attempts" in e["error"] for e in failures["examples"])


def test_request_deadline_bounds_attempts_and_waits_together(tmp_path, corpus):
    """A server that always asks to come back in 0.4 s; 20 attempts would be allowed, the 1 s
    request_deadline stops the retries first (how many fit depends on the machine's speed)."""
    served = Counter()

    async def later(scope: Scope, receive: Receive, send: Send) -> None:
        served["requests"] += 1
        await JSONResponse({"error": "busy"}, status_code=503, headers={"Retry-After": "0.4"})(scope, receive, send)

    with LoopbackServer(later) as server:
        backend = openai_backend(server.url, max_attempts=20, request_deadline=1.0, concurrency=UTTERANCES)
        outcome = run_config(tmp_path, corpus, backend)
    failures = outcome.metrics["failures"]
    assert failures["count"] == UTTERANCES
    assert all("at request_deadline (1 s)" in e["error"] for e in failures["examples"]), failures["examples"]
    assert served["requests"] < UTTERANCES * 20


def test_a_trickled_body_cannot_extend_the_timeout(tmp_path, corpus):
    """The answer's body comes a byte every 0.2 s and never ends: each byte used to restart httpx's
    read timeout, so the request never timed out. ``timeout`` now bounds the whole attempt."""
    trickle = Trickle(interval=0.2)
    with LoopbackServer(trickle) as server:
        outcome = run_config(tmp_path, corpus, openai_backend(server.url, timeout=1.0, concurrency=UTTERANCES))
    failures = outcome.metrics["failures"]
    assert failures["count"] == UTTERANCES
    assert all("no whole answer within timeout (1 s)" in e["error"] for e in failures["examples"])
    assert trickle.started == UTTERANCES * 2  # every attempt was cut off, then tried again once


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_an_answer_over_max_response_bytes_is_refused_while_it_streams(tmp_path, corpus, declared):
    """A 200 MB answer (the audit's case: 4.6 GB of RAM) against the 16 MiB default: refused from its
    Content-Length, or after 16 MiB of a chunked body; never read whole."""
    with LoopbackServer(Huge(200 << 20, declare_length=declared)) as server:
        outcome = run_config(tmp_path, corpus, openai_backend(server.url))
    failures = outcome.metrics["failures"]
    assert failures["count"] == UTTERANCES
    assert all("over max_response_bytes (16,777,216)" in e["error"] for e in failures["examples"])
    assert all("gave up" not in e["error"] for e in failures["examples"])  # the same answer again would not help


def cached_rows(cache: Path) -> int:
    with contextlib.closing(sqlite3.connect(cache)) as db:
        return db.execute("SELECT count(*) FROM transcripts").fetchone()[0]


def test_sigterm_ends_a_retry_after_wait_at_once_and_keeps_what_finished(tmp_path, corpus):
    """The server answers four clips, then asks for the rest to come back in an hour (honoured: the
    config allows it). The first SIGTERM, what CI sends, used to wait for the batch: an hour. It
    now ends the waits: exit 130, the four transcripts cached, the run directory marked incomplete."""
    oracle = Oracle.for_manifest(corpus)
    answered: list[str] = []
    waiting = Counter()

    def recognise(wav: bytes) -> str | Response:
        text = oracle(wav)
        if len(answered) < 4 and text not in answered:
            answered.append(text)
            return text
        waiting["429"] += 1
        return JSONResponse({"error": "quota"}, status_code=429, headers={"Retry-After": "3600"})

    with LoopbackServer(openai_app(recognise, api_key=None)) as server:
        backend = openai_backend(server.url, concurrency=2, max_retry_after=7200, request_deadline=86400)
        config = write_config(tmp_path / "run.yaml", corpus, backend, max_failure_rate=1.0)
        proc = start("run", str(config))
        deadline = time.monotonic() + 60
        while waiting["429"] < 2:  # both slots parked on a Retry-After
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended or never got its 429s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)  # generous: before the fix this waited an hour
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "rerun the same command" in err
    assert cached_rows(tmp_path / "runs" / ".cache" / "transcripts.sqlite") == 4
    [run_dir] = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
    assert not (run_dir / "metrics.json").exists()


def test_json_helpers_name_the_broken_field():
    """The failure messages the examples above search for."""
    from harness.backends.remote import UnusableAnswer, json_text

    with pytest.raises(UnusableAnswer, match="'text' is not a string") as caught:
        json_text(json.loads('{"text": null}'), "text")
    assert caught.value.retryable
