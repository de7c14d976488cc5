"""A run against a server that misbehaves 30 % of the time, through openai-compatible and real HTTP.

The loopback OpenAI server answers 500, 429 with Retry-After, answers too late for the client's
timeout, drops the connection, or never answers at all. The run must finish; retries stay within
``max_attempts`` for every utterance; each utterance that still fails is counted in its slices,
listed, and decides the exit code against ``max_failure_rate``; a rerun asks only for those.
"""

from __future__ import annotations

import io
import json
import logging
import re
import wave
from collections import Counter
from pathlib import Path

import httpx
import pandas as pd
import pytest
from cli import asrfair
from conftest import write_config
from fakes.openai import openai_app
from loopback import Faults, LoopbackServer, Oracle, tone_corpus
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from harness.config import load_config
from harness.data.audio import load_audio
from harness.data.manifest import load_manifest
from harness.pipeline import prepare, run

log = logging.getLogger(__name__)
UTTERANCES = 24
KINDS = ("500", "429", "slow", "drop", "hang")


def flaky(seed: int) -> Faults:
    """30 % faults in all. Client timeouts below are 5 s and 'slow' answers come after 20 s: on a loaded
    machine an ordinary answer can take over a second (a 1 s timeout turned answers into retries the
    test did not expect), while a slow one still always times out."""
    return Faults(
        error_500=0.08, error_429=0.07, slow=0.05, drop=0.05, hang=0.05, slow_seconds=20, retry_after=0.01, seed=seed
    )


class Attempts:
    """Outermost middleware: counts requests per utterance, told apart by the length of the WAV sent."""

    def __init__(self, manifest: Path) -> None:
        self.ids = {len(load_audio(u)): u.id for u in load_manifest(manifest).utterances}
        self.seen: Counter[str] = Counter()

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return await app(scope, receive, send)
            body, more = b"", True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            with wave.open(io.BytesIO(body[body.index(b"RIFF") :])) as clip:
                self.seen[self.ids[clip.getnframes()]] += 1
            replayed = False

            async def replay() -> Message:  # the body once, then the real channel (for disconnects)
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            await app(scope, replay, send)

        return counted


def backend(url: str, **options: object) -> dict:
    return {
        "name": "openai-compatible",
        "base_url": f"{url}/v1",
        "api_key_env": None,
        "timeout": 5.0,
        "backoff_initial": 0.01,
        **options,
    }


def asrfair_run(config: Path) -> tuple[int, Path, str]:
    """``asrfair run`` in a subprocess: exit code, run directory, stderr."""
    result = asrfair("run", str(config))
    assert "Traceback" not in result.stderr, result.stderr
    found = re.search(r"run directory: (\S+) \((\d+) transcribed, (\d+) from cache\)", result.stderr)
    assert found, result.stderr
    return result.returncode, Path(found[1]), found[0]


def failed_ids(run_dir: Path) -> set[str]:
    table = pd.read_parquet(run_dir / "transcripts.parquet")
    return set(table.loc[table["status"] != "ok", "id"])


def assert_failures_accounted(metrics: dict, failed: set[str], max_attempts: int) -> None:
    """Every final failure is in ``failures``, in every dimension's slices, and listed with its cause."""
    failures = metrics["failures"]
    assert failures["count"] == len(failed) and failures["rate"] == len(failed) / UTTERANCES
    assert {d["name"] for d in metrics["dimensions"]} >= {"accent"}
    for dimension in metrics["dimensions"]:
        assert sum(s["failed"] for s in dimension["slices"]) == failures["count"], dimension["name"]
    assert {e["id"] for e in failures["examples"]} == failed
    for example in failures["examples"]:
        assert f"gave up after {max_attempts} attempts" in example["error"], example


def test_a_flaky_server_bounds_retries_and_the_exit_code_follows_max_failure_rate(tmp_path):
    """Through the real CLI, requests one at a time so the seeded faults fall on the same requests
    every run (seed 5: 34 requests, 13 faulted, 3 utterances failing both attempts)."""
    corpus = tone_corpus(tmp_path / "data", UTTERANCES)
    oracle = Oracle.for_manifest(corpus)
    faults, attempts = flaky(seed=5), Attempts(corpus)
    with LoopbackServer(attempts.wrap(faults.wrap(openai_app(oracle, api_key=None)))) as server:
        options = backend(server.url, max_attempts=2, concurrency=1)
        code, first, summary = asrfair_run(write_config(tmp_path / "strict.yaml", corpus, options, max_failure_rate=0))

        # Above max_failure_rate: exit 3, and everything is written all the same.
        assert code == 3, summary
        assert all((first / name).is_file() for name in ("metrics.json", "transcripts.parquet", "report.md"))
        metrics = json.loads((first / "metrics.json").read_text())
        failed = failed_ids(first)
        assert failed and all(attempts.seen[u] == 2 for u in failed)  # failed = every attempt faulted
        assert_failures_accounted(metrics, failed, max_attempts=2)
        assert metrics["overall"]["wer"] == 0.0  # what did come back is right
        assert max(attempts.seen.values()) <= 2 and len(attempts.seen) == UTTERANCES
        assert faults.seen["requests"] == attempts.seen.total() <= UTTERANCES * 2
        assert all(faults.seen[kind] > 0 for kind in KINDS), faults.seen
        log_figures("CLI, one at a time, 2 attempts", faults, attempts, failed)

        # At max_failure_rate: exit 0. The server now fails everything, so exactly the same
        # utterances fail; the cached successes are not asked for again.
        faults.error_500, faults.error_429, faults.slow, faults.drop, faults.hang = 1.0, 0.0, 0.0, 0.0, 0.0
        attempts.seen.clear()
        boundary = write_config(
            tmp_path / "boundary.yaml", corpus, options, max_failure_rate=metrics["failures"]["rate"]
        )
        code, second, summary = asrfair_run(boundary)
        assert code == 0, summary
        assert summary.endswith(f"({len(failed)} transcribed, {UTTERANCES - len(failed)} from cache)")
        assert attempts.seen == {u: 2 for u in failed}
        assert failed_ids(second) == failed

        # Healed: the rerun retries only the failures, once each, and the run is whole.
        faults.error_500 = 0.0
        attempts.seen.clear()
        code, third, summary = asrfair_run(write_config(tmp_path / "healed.yaml", corpus, options))
        assert code == 0, summary
        assert attempts.seen == {u: 1 for u in failed}
        healed = json.loads((third / "metrics.json").read_text())
        assert healed["failures"]["count"] == 0 and healed["overall"]["wer"] == 0.0


def test_concurrent_requests_through_every_fault_kind_stay_within_max_attempts(tmp_path):
    """Six in flight, three attempts each. Seed 5's first 24 draws (there are at least 24 requests)
    hold every kind of fault, however the requests interleave."""
    corpus = tone_corpus(tmp_path / "data", UTTERANCES)
    faults, attempts = flaky(seed=5), Attempts(corpus)
    with LoopbackServer(attempts.wrap(faults.wrap(openai_app(Oracle.for_manifest(corpus), api_key=None)))) as server:
        options = backend(server.url, max_attempts=3, concurrency=6)
        outcome = run(prepare(load_config(write_config(tmp_path / "run.yaml", corpus, options))))
    failed = failed_ids(outcome.paths.root)
    assert_failures_accounted(outcome.metrics, failed, max_attempts=3)
    assert all(attempts.seen[u] == 3 for u in failed)
    assert max(attempts.seen.values()) <= 3 and len(attempts.seen) == UTTERANCES
    assert faults.seen["requests"] == attempts.seen.total() <= UTTERANCES * 3
    assert all(faults.seen[kind] > 0 for kind in KINDS), faults.seen
    assert outcome.metrics["overall"]["wer"] == 0.0
    log_figures("in-process, 6 in flight, 3 attempts", faults, attempts, failed)


def log_figures(scenario: str, faults: Faults, attempts: Attempts, failed: set[str] | list[str]) -> None:
    """For docs/RELIABILITY.md: run with ``-o log_cli=true --log-cli-level=INFO`` to see them."""
    injected = {kind: faults.seen[kind] for kind in KINDS}
    log.info(
        "%s: %d requests for %d utterances, faults injected %s (%d), most attempts for one utterance %d, "
        "%d failed finally",
        scenario,
        faults.seen["requests"],
        UTTERANCES,
        injected,
        sum(injected.values()),
        max(attempts.seen.values()),
        len(failed),
    )


def test_a_hung_request_holds_the_server_only_while_its_client_waits():
    form = {"data": {"model": "m"}, "files": {"file": b"x"}}
    held = Faults(hang=1.0, hang_seconds=3600)
    server = LoopbackServer(held.wrap(openai_app(lambda wav: "never", api_key=None)))
    with server, pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/audio/transcriptions", **form, timeout=0.2)
    # an hour-long hang, but its client left: the server shut down (within __exit__'s 10 s join)
    assert not server.running and held.seen["hang"] == 1

    closed = Faults(hang=1.0, hang_seconds=0.3)
    closing = LoopbackServer(closed.wrap(openai_app(lambda wav: "never", api_key=None)))
    with closing, pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):  # closed unanswered
        httpx.post(f"{closing.url}/v1/audio/transcriptions", **form, timeout=60)
    assert closed.seen["hang"] == 1
