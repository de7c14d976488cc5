"""kill -9 at random points, resume each time: the finished run must equal an uninterrupted one.

The backend is the real stub, wrapped by a plugin that logs every utterance it starts and takes a
little time per utterance, so kills land in model calls as well as in scoring and writing. A
transcript may be computed twice only when its batch was in flight at a kill.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf
from conftest import demo_records, write_config, write_jsonl
from counting import BATCH, check_not_corrupt, counting_config, finish, run_dirs, start  # noqa: F401 - fixture
from fakes.openai import openai_app
from loopback import Faults, LoopbackServer, Oracle, tone_corpus

log = logging.getLogger(__name__)


def comparable(metrics: dict) -> dict:
    """metrics.json without what differs between two runs of one config: when, where output went, and
    the run's own throughput (a resumed run times only what it transcribed itself)."""
    provenance = {k: v for k, v in metrics["provenance"].items() if k not in {"created_utc", "config"}}
    return {**{k: v for k, v in metrics.items() if k != "throughput"}, "provenance": provenance}


def phase_of(run_dir: Path | None) -> str:
    """How far a killed run got, by what its directory holds (files are written in this order)."""
    if run_dir is None:
        return "starting"
    for name, phase in (
        ("metrics.json", "done-but-history"),
        ("report.md", "writing reports"),
        ("utterances.parquet", "writing results"),
        ("transcripts.parquet", "scoring"),
        ("config.yaml", "transcribing"),
    ):
        if (run_dir / name).exists():
            return phase
    return "starting"


def timed(config: Path, output: Path, started_log: Path) -> tuple[float, dict]:
    began = time.monotonic()
    metrics = finish(start(config, output, started_log))
    return time.monotonic() - began, metrics


def cached_count(output: Path) -> int:
    cache = output / ".cache" / "transcripts.sqlite"
    if not cache.exists():
        return 0
    with contextlib.closing(sqlite3.connect(cache)) as db:
        tables = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'transcripts'").fetchone()[0]
        return db.execute("SELECT count(*) FROM transcripts").fetchone()[0] if tables else 0  # killed before the table


@pytest.mark.slow  # 20 kill -9s, each a fresh interpreter, then a resume
def test_twenty_kills_lose_nothing_and_compute_nothing_twice(tmp_path, counting_config):
    kills = int(os.environ.get("ASRFAIR_KILLS", "20"))
    clean_log, killed_log = tmp_path / "clean.log", tmp_path / "killed.log"
    cold_s, expected = timed(counting_config, tmp_path / "clean", clean_log)
    warm_s, _ = timed(counting_config, tmp_path / "clean", clean_log)  # every transcript from the cache
    utterances = expected["overall"]["utterances"]
    assert Counter(clean_log.read_text().split()) == Counter({u: 1 for u in clean_log.read_text().split()})

    output, rng, phases = tmp_path / "killed", random.Random(11), Counter()
    for attempt in range(kills):
        before = run_dirs(output)
        remaining = 1 - cached_count(output) / utterances
        proc = start(counting_config, output, killed_log, to_be_killed=True)
        if attempt % 2 and remaining > 0:
            # Every other kill waits for this attempt to start a batch, so some kills surely land in
            # the run itself, not in interpreter start-up, however loaded the machine is.
            started_so_far = len(killed_log.read_text().split()) if killed_log.exists() else 0
            wait_for_started(killed_log, started_so_far + 1, proc)
        else:  # a moment within this attempt's expected length, which shrinks as the cache fills
            time.sleep(rng.uniform(0.0, warm_s + remaining * (cold_s - warm_s)))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        new = sorted(run_dirs(output) - before)
        phases["finished before the kill" if proc.returncode == 0 else phase_of(new[0] if new else None)] += 1
        check_not_corrupt(output)
    resumed = finish(start(counting_config, output, killed_log))
    log.info("%d kills over a %.1f s run (%.1f s from the cache), by phase: %s", kills, cold_s, warm_s, dict(phases))

    assert comparable(resumed) == comparable(expected)
    started = Counter(killed_log.read_text().split())
    assert set(started) == set(clean_log.read_text().split()) and len(started) == utterances
    recomputed = sum(started.values()) - utterances
    assert recomputed <= kills * BATCH, f"{recomputed} transcripts computed twice over {kills} kills"
    mid_run = phases.total() - phases["starting"] - phases["finished before the kill"]
    assert mid_run >= 1, phases  # the kills hit the run itself, not only interpreter start-up
    check_not_corrupt(output)
    final = max(run_dirs(output), key=lambda p: p.stat().st_mtime)
    assert (final / "report.html").is_file() and (final / "metrics.json").is_file()


@pytest.mark.slow
def test_a_killed_whisper_run_resumes_to_the_same_metrics(tmp_path):
    pytest.importorskip("faster_whisper")
    manifest = write_jsonl(tmp_path / "manifest.jsonl", demo_records(per_dialect=2, into=tmp_path))
    whisper = {"name": "faster-whisper", "model": "tiny.en", "compute_type": "int8", "cpu_threads": 2}
    config = write_config(tmp_path / "run.yaml", manifest, whisper, stats={"min_speakers": 1, "min_words": 1})
    began = time.monotonic()
    expected = finish(start(config, tmp_path / "clean", tmp_path / "unused.log"))
    full_run_s = time.monotonic() - began
    output, rng = tmp_path / "killed", random.Random(5)
    for _ in range(5):
        proc = start(config, output, tmp_path / "unused.log", to_be_killed=True)
        time.sleep(rng.uniform(0.0, full_run_s))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        check_not_corrupt(output)
    assert comparable(finish(start(config, output, tmp_path / "unused.log"))) == comparable(expected)


def wait_for_started(started_log: Path, count: int, proc: subprocess.Popen | None = None) -> None:
    """Until ``count`` transcripts have started (or ``proc`` has ended); generous for a loaded machine."""
    deadline = time.monotonic() + 120
    while len(started_log.read_text().split() if started_log.exists() else []) < count:
        if proc is not None and proc.poll() is not None:
            return
        assert time.monotonic() < deadline, f"the run did not start {count} transcripts within 120 s"
        time.sleep(0.02)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_lets_the_batch_in_flight_finish_says_where_results_are_and_the_rerun_resumes(
    tmp_path,
    counting_config,
    stop,
    monkeypatch,
):
    monkeypatch.setenv("ASRFAIR_DELAY_S", "0.02")  # a 5 s run: the signal lands mid-run on a loaded machine too
    started_log, output = tmp_path / "started.log", tmp_path / "runs"
    proc = start(counting_config, output, started_log)
    wait_for_started(started_log, 40)
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and out == ""
    assert "stopping after the batch in flight" in err
    [stopped] = run_dirs(output)
    cache = output / ".cache" / "transcripts.sqlite"
    assert f"cached in {cache}" in err and f"{stopped} is incomplete" in err and "rerun the same command" in err
    assert (stopped / "config.yaml").is_file() and not (stopped / "metrics.json").exists()
    check_not_corrupt(output)
    assert cached_count(output) == len(started_log.read_text().split())  # the batch in flight was kept too

    metrics = finish(start(counting_config, output, started_log))
    started = Counter(started_log.read_text().split())
    assert len(started) == metrics["overall"]["utterances"]
    assert sum(started.values()) == len(started)  # nothing computed twice


def test_a_second_signal_stops_at_once(tmp_path, counting_config, monkeypatch):
    monkeypatch.setenv("ASRFAIR_DELAY_S", "5")  # a batch of 8 takes 40 s: waiting for it would cache it
    started_log, output = tmp_path / "started.log", tmp_path / "runs"
    proc = start(counting_config, output, started_log)
    wait_for_started(started_log, 1)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "rerun the same command" in err
    assert cached_count(output) == 0  # the batch in flight was abandoned, as asked


def test_kill_9_during_a_remote_run_resends_at_most_the_requests_in_flight(tmp_path):
    """A remote batch is concurrency x 32 paid requests (one batch here); it was cached only once
    whole, so each kill -9 threw away every answer of the batch (124 of 364 requests sent twice in
    the audit). Each transcript is now committed as it arrives: a kill re-sends at most the
    ``concurrency`` requests that were in flight."""
    utterances, concurrency, kills = 48, 4, 3
    corpus = tone_corpus(tmp_path / "data", utterances)
    oracle = Oracle.for_manifest(corpus)
    sent: Counter[int] = Counter()  # requests per clip, by its sample count

    def recognise(wav: bytes) -> str:
        sent[len(sf.read(io.BytesIO(wav))[0])] += 1
        return oracle(wav)

    app = Faults(latency=0.05).wrap(openai_app(recognise, api_key=None))
    with LoopbackServer(app) as server:
        backend = {"name": "openai-compatible", "base_url": f"{server.url}/v1", "api_key_env": None}
        config = write_config(tmp_path / "run.yaml", corpus, backend | {"concurrency": concurrency})
        output = tmp_path / "runs"
        for _ in range(kills):
            before = sent.total()
            proc = start(config, output, tmp_path / "unused.log", to_be_killed=True)
            deadline = time.monotonic() + 120
            while sent.total() < before + 8:  # killed mid-batch, once it has had answers to lose
                assert proc.poll() is None and time.monotonic() < deadline, "the run ended or sent nothing"
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
            check_not_corrupt(output)
        metrics = finish(start(config, output, tmp_path / "unused.log"))
    resent = sent.total() - utterances
    log.info("remote kill -9: %d requests, %d clips, %d kills, %d re-sent", sent.total(), utterances, kills, resent)
    assert len(sent) == utterances and metrics["failures"]["count"] == 0 and metrics["overall"]["wer"] == 0.0
    assert resent <= kills * concurrency, f"{resent} requests sent twice over {kills} kills"
