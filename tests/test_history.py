"""Run history: recorded by every run, read back by 'asrfair history', safe with concurrent writers and kills."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cli
import duckdb
import pandas as pd
import pytest
from conftest import REPO, write_config, write_jsonl, write_tone
from rich.console import Console

from harness.config import load_config
from harness.decide.history import load_history, record_run
from harness.errors import InputError
from harness.pipeline import RunOutcome, prepare, run
from harness.report.history import show_history, trend_lines

RATES = (0.05, 0.15, 0.3)  # the planted trend: accent=x gets worse run after run; accent=y stays clean
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]

# Child processes import harness.decide.history without the package __init__ (which loads the whole
# pipeline, seconds of scipy imports): the module under test is the same, the test stays fast.
CHILD_PRELUDE = f"""
import json, logging, sys, time, types
from pathlib import Path
package = types.ModuleType("harness")
package.__path__ = [{str(REPO / "harness")!r}]
sys.modules["harness"] = package
import duckdb
from harness.decide.history import record_run, run_rows, write_rows
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
logging.getLogger("harness.decide.history").setLevel(logging.DEBUG)
db = Path(sys.argv[1])
metrics = json.loads(Path(sys.argv[2]).read_text()) if len(sys.argv) > 2 else None
"""


@dataclass(frozen=True)
class Recorded:
    db: Path
    outcomes: list[RunOutcome]

    def metrics(self, i: int) -> dict[str, Any]:
        return json.loads((self.outcomes[i].paths.root / "metrics.json").read_text())


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """Three real stub runs recorded into one history database, accent=x's error rate rising."""
    root = tmp_path_factory.mktemp("history")
    write_tone(root / "tone.wav")
    records = [
        {"id": f"{a}-{s}-{n}", "audio": "tone.wav", "text": " ".join(WORDS), "speaker": f"{a}{s}", "accent": a}
        for a in ("x", "y")
        for s in range(3)
        for n in range(10)
    ]
    manifest = write_jsonl(root / "manifest.jsonl", records)
    db = root / "db" / "history.duckdb"
    stats = {"min_speakers": 1, "min_words": 1, "bootstrap": 200, "permutations": 0, "model": "none"}
    outcomes = []
    for rate in RATES:
        backend = {"name": "stub", "error_rates": {"accent": {"x": rate}}}
        config = load_config(write_config(root / "run.yaml", manifest, backend, history=str(db), stats=stats))
        outcomes.append(run(prepare(config)))
    return Recorded(db, outcomes)


def query(db: Path, sql: str, *params: Any) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """``child(body, *argv)``: a Python process running CHILD_PRELUDE + body; killed at teardown if still alive."""
    started: list[subprocess.Popen] = []

    def start(body: str, *args: str) -> subprocess.Popen:
        script = tmp_path / f"child-{len(started)}.py"
        script.write_text(CHILD_PRELUDE + textwrap.dedent(body), encoding="utf-8")
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        started.append(subprocess.Popen([sys.executable, str(script), *args], cwd=REPO, text=True, **pipes))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def big_metrics(template: dict[str, Any], dimensions: int = 40, labels: int = 250) -> dict[str, Any]:
    """A run with dimensions × labels slices (10,000 by default): a write that takes a while."""
    slice_ = template["dimensions"][0]["slices"][0]
    disparity = template["dimensions"][0]["disparity"]
    dims = [
        {
            "name": f"d{d}",
            "slices": [{**slice_, "label": f"l{i}", "wer": i / labels} for i in range(labels)],
            "disparity": disparity,
        }
        for d in range(dimensions)
    ]
    return {**template, "dimensions": dims}


def slice_count(metrics: dict[str, Any]) -> int:
    return sum(len(d["slices"]) for d in metrics["dimensions"])


# ------------------------------------------------------------------------------------ what is recorded


def test_rows_match_metrics_json(recorded):
    assert len(query(recorded.db, "SELECT * FROM runs")) == 3
    for i, outcome in enumerate(recorded.outcomes):
        metrics, run_id = recorded.metrics(i), outcome.paths.root.name
        provenance, overall = metrics["provenance"], metrics["overall"]
        [row] = query(
            recorded.db,
            "SELECT run_name, run_dir, backend, backend_id, manifest_sha256, normalizer, aggregate, wer, wer_ci_low,"
            " wer_ci_high, words, speakers, utterances, failures, failure_rate, git_sha, harness_version,"
            " started_utc <= finished_utc FROM runs WHERE run_id = ?",
            run_id,
        )
        assert row == (
            provenance["run_name"],
            str(outcome.paths.root.resolve()),
            "stub",
            provenance["backend"]["id"],
            provenance["manifest"]["sha256"],
            provenance["normalizer"],
            metrics["aggregate"],
            overall["wer"],
            *overall["wer_ci"],
            overall["words"],
            overall["speakers"],
            overall["utterances"],
            metrics["failures"]["count"],
            metrics["failures"]["rate"],
            provenance["git_sha"],
            provenance["harness_version"],
            True,
        )
        sql = (
            "SELECT dimension, label, wer, wer_ci_low, wer_ci_high, words, speakers, failed FROM slices WHERE run_id=?"
        )
        expected = {
            (d["name"], s["label"], s["wer"], *(s["wer_ci"] or [None, None]), s["words"], s["speakers"], s["failed"])
            for d in metrics["dimensions"]
            for s in d["slices"]
        }
        assert set(query(recorded.db, sql, run_id)) == expected
        [accent] = metrics["dimensions"]
        disparity = accent["disparity"]
        sql = "SELECT dimension, gap, gap_ci_low, gap_ci_high, ratio, worst, best FROM disparity WHERE run_id = ?"
        assert query(recorded.db, sql, run_id) == [
            ("accent", disparity["gap"], *disparity["gap_ci"], disparity["ratio"], "x", "y")
        ]


def test_rerecording_a_run_replaces_its_rows(recorded, tmp_path):
    db = tmp_path / "copy.duckdb"
    shutil.copy(recorded.db, db)
    metrics = recorded.metrics(0)
    root = recorded.outcomes[0].paths.root
    metrics["overall"]["wer"] = 0.5
    metrics["dimensions"][0]["slices"] = metrics["dimensions"][0]["slices"][:1]  # a rescore with fewer slices
    assert record_run(db, root, metrics)
    assert query(db, "SELECT count(*), count(DISTINCT run_id) FROM runs") == [(3, 3)]
    assert query(db, "SELECT wer FROM runs WHERE run_id = ?", root.name) == [(0.5,)]
    assert query(db, "SELECT label FROM slices WHERE run_id = ?", root.name) == [("x",)]
    assert query(db, "SELECT count(*) FROM disparity WHERE run_id = ?", root.name) == [(1,)]


def test_history_failure_warns_and_the_run_succeeds(tmp_path, make_manifest, caplog):
    manifest = make_manifest([{"id": "a", "text": "one two", "speaker": "s", "accent": "x"}])
    not_a_db = tmp_path / "a-directory"
    not_a_db.mkdir()
    config = load_config(write_config(tmp_path / "run.yaml", manifest, {"name": "stub"}, history=str(not_a_db)))
    with caplog.at_level(logging.WARNING, logger="harness.decide.history"):
        outcome = run(prepare(config))
    assert (outcome.paths.root / "metrics.json").is_file() and outcome.metrics["overall"]["wer"] == 0.0
    [warning] = [r for r in caplog.records if r.name == "harness.decide.history"]
    assert warning.levelno == logging.WARNING
    assert str(not_a_db) in warning.getMessage() and "not updated" in warning.getMessage()


# ------------------------------------------------------------------------------------ asrfair history


def test_history_cli_shows_the_planted_trend(recorded, tmp_path):
    db, png = str(recorded.db), tmp_path / "plots" / "trend.png"
    table = cli.start("history", "--db", db, "--slice", "accent=x", "--slice", "accent=y", "--plot", str(png))
    rows = cli.start("history", "--db", db, "--slice", "accent=x", "--json")
    table, rows = map(cli.finish, (table, rows))

    assert table.returncode == 0, table.stderr
    lines = [line for line in table.stdout.splitlines() if "stub " in line]
    assert len(lines) == 3 and "WER [95% CI] per run" in table.stdout and "accent=x" in table.stdout
    x_cells = [
        float(line.split("│")[6].split("%")[0]) for line in lines
    ]  # started, run, backend, normaliser, overall, x
    assert x_cells[0] < x_cells[1] < x_cells[2]
    assert f"plot written: {png}" in table.stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

    assert rows.returncode == 0, rows.stderr
    history = json.loads(rows.stdout)
    assert [r["run_id"] for r in history] == [o.paths.root.name for o in recorded.outcomes]  # oldest first
    for i, row in enumerate(history):
        metrics = recorded.metrics(i)
        x = next(s for s in metrics["dimensions"][0]["slices"] if s["label"] == "x")
        assert row["wer"] == metrics["overall"]["wer"] and row["backend_id"] == metrics["provenance"]["backend"]["id"]
        assert row["slices"]["accent=x"]["wer"] == x["wer"]
        assert [row["slices"]["accent=x"]["wer_ci_low"], row["slices"]["accent=x"]["wer_ci_high"]] == x["wer_ci"]
        assert x["wer"] == pytest.approx(RATES[i], abs=0.07)


def test_the_plot_draws_one_line_per_backend_fingerprint(recorded, tmp_path):
    """Runs of another backend (here the first run, recorded again as if by Whisper) are never joined
    to the stub's line; with one fingerprint the line is named by its series alone."""
    from harness.decide.history import History, trend_frame
    from harness.report.history import plot_trend

    db = tmp_path / "history.duckdb"
    shutil.copyfile(recorded.db, db)
    history = load_history(db)
    stubs = history.runs.assign(backend_id="stub-one")  # one fingerprint: one line per series
    wanted = pd.DataFrame({"dimension": ["accent"], "label": ["x"]})
    same = trend_lines(trend_frame(History(stubs, history.slices), wanted))
    assert [(label, len(points)) for label, points in same] == [("accent=x", 3)]

    metrics = recorded.metrics(0)
    whisper = {**metrics["provenance"]["backend"], "name": "faster-whisper", "id": "whisper0123456789"}
    metrics["provenance"] = {**metrics["provenance"], "backend": whisper, "started_utc": "2030-01-01T00:00:00+00:00"}
    assert record_run(db, tmp_path / "whisper-20300101T000000Z", metrics)
    history = load_history(db)
    is_stub = history.runs["backend"] == "stub"
    runs = history.runs.assign(backend_id=history.runs["backend_id"].where(~is_stub, "stub-one"))
    lines = trend_lines(trend_frame(History(runs, history.slices), pd.DataFrame(columns=["dimension", "label"])))
    assert [(label, len(points)) for label, points in lines] == [
        ("overall · stub stub-one", 3),
        ("overall · faster-whisper whisper0", 1),
    ]
    png = tmp_path / "trend.png"
    assert plot_trend(trend_frame(History(runs, history.slices), wanted), png, title="t", band="b") == [
        "accent=x · stub stub-one",
        "accent=x · faster-whisper whisper0",
    ]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_trend_across_normalisers_is_called_out(recorded, tmp_path):
    db = tmp_path / "history.duckdb"
    shutil.copyfile(recorded.db, db)
    metrics = recorded.metrics(0)
    metrics["provenance"] = {**metrics["provenance"], "normalizer": "basic@1"}
    assert record_run(db, tmp_path / "rescored-20261201T000000Z", metrics)
    shown = cli.finish(cli.start("history", "--db", str(db)))
    assert shown.returncode == 0, shown.stderr
    assert "basic@1" in shown.stdout and "whisper-english@1" in shown.stdout
    assert "scored under 2 normalisers (basic@1, whisper-english@1)" in shown.stdout


def test_history_selection_and_input_errors(recorded, tmp_path):
    names = [o.paths.root.name for o in recorded.outcomes]
    assert load_history(recorded.db, name="test", last=2).runs["run_id"].tolist() == names[1:]
    console = Console(file=io.StringIO(), width=200)
    show = partial(show_history, name=None, last=30, plot=None, as_json=False, console=console)
    with pytest.raises(InputError, match="no runs named 'nope' recorded; run names: test"):
        load_history(recorded.db, name="nope")
    with pytest.raises(InputError, match=r"^--slice accent=z: no such slice .* available: accent=x, accent=y$"):
        show(recorded.db, slices=["accent=y", "accent=z"])
    with pytest.raises(InputError, match="--slice accent: expected dimension=label"):
        show(recorded.db, slices=["accent"])
    with pytest.raises(InputError, match=f"^no history at {tmp_path / 'none.duckdb'}; runs record there after"):
        show(tmp_path / "none.duckdb", slices=[])
    with pytest.raises(InputError, match="--last 0: must be at least 1"):
        load_history(recorded.db, last=0)
    duckdb.connect(str(tmp_path / "empty.duckdb")).close()  # what a kill before the first commit leaves
    with pytest.raises(InputError, match=r"empty\.duckdb: no runs recorded; runs record there after"):
        show(tmp_path / "empty.duckdb", slices=[])
    show(recorded.db, slices=["accent=y"])
    assert "accent=y" in console.file.getvalue()


# ------------------------------------------------------------------------------------ concurrency, kills


def test_concurrent_writers_lose_nothing(recorded, tmp_path, child):
    """Two processes append 10 runs each while a third holds the lock at the start: all 20 land."""
    db, template = tmp_path / "history.duckdb", tmp_path / "metrics.json"
    template.write_text(json.dumps(recorded.metrics(0)))
    body = """
        worker, count = sys.argv[3], int(sys.argv[4])
        print("ready", flush=True)
        ok = [record_run(db, Path(f"/runs/{worker}-{i}"), metrics) for i in range(count)]
        sys.exit(0 if all(ok) else 1)
    """
    with duckdb.connect(str(db)):  # hold the lock until both writers are waiting for it
        writers = [child(body, str(db), str(template), name, "10") for name in ("a", "b")]
        assert [w.stdout.readline().strip() for w in writers] == ["ready", "ready"]
        time.sleep(0.3)
    results = [cli.finish(w) for w in writers]
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "WARNING" not in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert "Could not set lock" in result.stderr  # each one did wait for the lock (retry log, DEBUG)
    per_run = slice_count(recorded.metrics(0))
    assert query(db, "SELECT count(*), count(DISTINCT run_id) FROM runs") == [(20, 20)]
    assert query(db, "SELECT count(*) FROM slices") == [(20 * per_run,)]
    assert {r for (r,) in query(db, "SELECT run_id FROM runs")} == {f"{w}-{i}" for w in "ab" for i in range(10)}


def test_kill_inside_the_transaction_leaves_the_committed_runs(recorded, tmp_path, child):
    db, template = tmp_path / "history.duckdb", tmp_path / "metrics.json"
    template.write_text(json.dumps(big_metrics(recorded.metrics(0))))
    assert record_run(db, recorded.outcomes[0].paths.root, recorded.metrics(0))
    body = """
        con = duckdb.connect(str(db))
        con.begin()
        write_rows(con, "big-run", run_rows(Path("big-run"), metrics))
        print("inside", flush=True)
        time.sleep(60)
    """
    writer = child(body, str(db), str(template))
    assert writer.stdout.readline().strip() == "inside", cli.finish(writer).stderr
    os.kill(writer.pid, signal.SIGKILL)
    assert writer.wait(timeout=30) == -signal.SIGKILL

    history = load_history(db)  # a read-only open first: it must cope with whatever the kill left
    assert history.runs["run_id"].tolist() == [recorded.outcomes[0].paths.root.name]
    assert len(history.slices) == slice_count(recorded.metrics(0))
    assert record_run(db, recorded.outcomes[1].paths.root, recorded.metrics(1))  # the lock died with the process
    assert query(db, "SELECT count(*) FROM runs") == [(2,)]


def test_kills_mid_writes_keep_every_run_whole(recorded, tmp_path, child):
    """SIGKILL processes recording large runs back to back, at two points: every run in the db is complete,
    none half-written, and every run a writer reported committed is there."""
    db, template = tmp_path / "history.duckdb", tmp_path / "metrics.json"
    metrics = big_metrics(recorded.metrics(0))
    template.write_text(json.dumps(metrics))
    body = """
        for i in range(1000):
            assert record_run(db, Path(f"{sys.argv[3]}-{i}"), metrics)
            print(f"committed {sys.argv[3]}-{i}", flush=True)
    """
    committed: set[str] = set()
    for writer_name, delay_s in (("a", 0.05), ("b", 0.25)):
        writer = child(body, str(db), str(template), writer_name)
        first = writer.stdout.readline()
        assert first.startswith("committed"), cli.finish(writer).stderr
        time.sleep(delay_s)
        os.kill(writer.pid, signal.SIGKILL)
        stdout, _ = writer.communicate(timeout=30)
        done = {line.split()[1] for line in [first, *stdout.splitlines()]}
        committed |= done
        in_flight = f"{writer_name}-{len(done)}"

        history = load_history(db, last=10_000)  # read-only first: it must cope with whatever the kill left
        runs = set(history.runs["run_id"])
        assert committed <= runs <= committed | {in_flight}
        committed = runs
        assert history.slices.groupby("run_id").size().to_dict() == dict.fromkeys(runs, slice_count(metrics))
        assert query(db, "SELECT count(*), count(DISTINCT run_id) FROM disparity") == [(40 * len(runs), len(runs))]


def test_waits_for_the_lock_then_gives_up_with_a_warning(recorded, tmp_path, caplog, child):
    db = tmp_path / "history.duckdb"
    shutil.copy(recorded.db, db)
    holder = child('con = duckdb.connect(str(db)); print("holding", flush=True); sys.stdin.readline()', str(db))
    assert holder.stdout.readline().strip() == "holding", cli.finish(holder).stderr
    root, metrics = recorded.outcomes[0].paths.root, recorded.metrics(0)
    with caplog.at_level(logging.WARNING, logger="harness.decide.history"):
        assert not record_run(db, root, metrics, lock_wait_s=0.3)
    assert str(db) in caplog.text and "Could not set lock" in caplog.text
    with pytest.raises(InputError, match=r"cannot read the run history \(IO Error: Could not set lock"):
        load_history(db, lock_wait_s=0.3)

    released = threading.Event()

    def release() -> None:
        released.set()
        holder.communicate("release\n", timeout=30)

    releaser = threading.Timer(0.5, release)
    releaser.start()
    assert record_run(db, root, metrics)  # the default wait outlasts the holder
    assert released.is_set()  # it could write only once the holder let go: it waited, it did not fail
    releaser.join()
    assert holder.returncode == 0
    assert len(load_history(db).runs) == 3
