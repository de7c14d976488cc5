"""A counting backend for the reliability tests: the real stub, slowed down, logging each utterance
it starts to a file that survives kill -9 (one write per batch), installed as a real plugin."""

from __future__ import annotations

import contextlib
import json
import resource
import sqlite3
import subprocess
from pathlib import Path

import cli
import duckdb
import pandas as pd
import pytest
from conftest import DEMO, install_backend_plugin, write_config, write_jsonl

from harness.decide.history import TABLES

BATCH = 8
PLUGIN = f'''
import os, time
from harness.backends.base import Capabilities
from harness.backends.stub import StubBackend

class CountingStub(StubBackend):
    """The stub, slowed down, logging each utterance it starts (survives kill -9: one write per line)."""
    name = "counting-stub"
    capabilities = Capabilities(needs_audio=False, max_batch_size={BATCH})

    def transcribe(self, batch):
        with open(os.environ["ASRFAIR_STARTED_LOG"], "a", encoding="utf-8") as started:
            started.write("".join(r.utterance.id + "\\n" for r in batch))
        time.sleep(float(os.environ.get("ASRFAIR_DELAY_S", "0.004")) * len(batch))
        return super().transcribe(batch)
'''


def run_dirs(output: Path) -> set[Path]:
    return {p for p in output.iterdir() if p.is_dir() and not p.name.startswith(".")} if output.exists() else set()


def check_not_corrupt(output: Path) -> None:
    """Every file a killed or finished run left is whole: the cache, each Parquet/JSON, the history."""
    cache = output / ".cache" / "transcripts.sqlite"
    if cache.exists():  # a kill during start-up comes before the cache is made
        with contextlib.closing(sqlite3.connect(cache)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for run_dir in run_dirs(output):
        for parquet in run_dir.glob("*.parquet"):
            pd.read_parquet(parquet)
        for document in run_dir.glob("*.json"):
            json.loads(document.read_text(encoding="utf-8"))
    history = output / "history.duckdb"
    if history.exists():
        # all tables or none: a kill before the first record's commit leaves an empty database
        with duckdb.connect(str(history), read_only=True) as con:
            tables = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            assert tables in (set(), set(TABLES)), tables
            if tables:
                con.execute("SELECT count(*) FROM runs").fetchone()


@pytest.fixture
def counting_config(tmp_path: Path) -> Path:
    install_backend_plugin(tmp_path, "counting_asr", PLUGIN, "counting-stub", "CountingStub")
    data = tmp_path / "data"
    data.mkdir()
    records = [json.loads(line) for line in (DEMO / "manifest.jsonl").read_text().splitlines()]
    manifest = write_jsonl(data / "manifest.jsonl", [{**r, "audio": str(DEMO / r["audio"])} for r in records])
    stub = {"name": "counting-stub", "default_rate": 0.02, "error_rates": {"accent": {"scottish": 0.2}}}
    return write_config(
        tmp_path / "run.yaml", manifest, stub, audio_roots=[str(DEMO)], stats={"min_speakers": 1, "min_words": 1}
    )


def start(
    config: Path, output: Path, started_log: Path, *, to_be_killed: bool = False, max_file_bytes: int | None = None
) -> subprocess.Popen:
    """``asrfair run CONFIG --json`` in a subprocess. A run that will be killed writes to /dev/null:
    nobody reads its pipes, and a full pipe would park it on its last write, away from the work.
    ``max_file_bytes`` caps every file it writes (RLIMIT_FSIZE: a write past it fails, as on a full disk)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return cli.start(
        "run",
        str(config),
        "--output",
        str(output),
        "--json",
        env={"PYTHONPATH": str(config.parent), "ASRFAIR_STARTED_LOG": str(started_log)},
        stdout=subprocess.DEVNULL if to_be_killed else subprocess.PIPE,
        stderr=subprocess.DEVNULL if to_be_killed else subprocess.PIPE,
        preexec_fn=None if max_file_bytes is None else cap,
    )


def finish(proc: subprocess.Popen) -> dict:
    done = cli.finish(proc)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
