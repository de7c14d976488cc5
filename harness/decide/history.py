"""Run history: every finished run appended to an embedded DuckDB database.

``record_run`` (the last step of ``asrfair run``) writes one row to ``runs``, one per slice to
``slices`` and one per dimension to ``disparity``, in one transaction: a run is recorded whole or
not at all, and recording a run again replaces its rows. DuckDB lets one process at a time open a
file for writing, so concurrent runs wait for the lock (jittered exponential backoff, up to
``LOCK_WAIT_S``) and hold it only for that short transaction. A killed writer leaves the state of
the last commit (DuckDB's write-ahead log). The history is a convenience: when it cannot be
written the run logs a warning and succeeds, its directory is the record.

``load_history`` and ``trend_frame`` read it back; ``harness.report.history`` shows them (``asrfair
history``): a trend table of overall and per-slice WER, JSON rows, or a PNG of WER over time.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_before_delay, wait_random_exponential

from harness.errors import InputError
from harness.files import NO_DUCKDB_EXTENSIONS, duckdb_columns

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd  # for reading the history back; a run records its rows without it

log = logging.getLogger(__name__)

LOCK_WAIT_S = 30.0  # how long a writer or reader waits for another process's lock before giving up

# Column name -> DuckDB type, per table; the DDL and the rows written are both made from these.
RUNS = {
    "run_id": "VARCHAR",  # the run directory's name, unique per output folder
    "run_name": "VARCHAR",
    "run_dir": "VARCHAR",
    "started_utc": "TIMESTAMP",
    "finished_utc": "TIMESTAMP",
    "rescored_utc": "TIMESTAMP",
    "recorded_utc": "TIMESTAMP",
    "backend": "VARCHAR",
    "backend_id": "VARCHAR",
    "manifest_sha256": "VARCHAR",
    "normalizer": "VARCHAR",
    "normalizer_sha256": "VARCHAR",  # a user's YAML normaliser's definition; null for presets
    "normalizers_compared": "VARCHAR",  # the sensitivity view's other normalisers, comma-separated
    "scorer_version": "VARCHAR",
    "jiwer_version": "VARCHAR",
    "model_revision": "VARCHAR",
    "aggregate": "VARCHAR",
    "confidence": "DOUBLE",
    "wer": "DOUBLE",
    "wer_ci_low": "DOUBLE",
    "wer_ci_high": "DOUBLE",
    "words": "BIGINT",
    "speakers": "BIGINT",
    "utterances": "BIGINT",
    "failures": "BIGINT",
    "failure_rate": "DOUBLE",
    "git_sha": "VARCHAR",
    "harness_version": "VARCHAR",
    "metrics_schema": "VARCHAR",
    "provenance": "JSON",  # the run's whole provenance block (metrics.json), for anything not in a column
}
SLICES = {
    "run_id": "VARCHAR",
    "dimension": "VARCHAR",
    "label": "VARCHAR",
    "wer": "DOUBLE",
    "wer_ci_low": "DOUBLE",
    "wer_ci_high": "DOUBLE",
    "words": "BIGINT",
    "speakers": "BIGINT",
    "utterances": "BIGINT",
    "failed": "BIGINT",
    "supported": "BOOLEAN",
}
DISPARITY = {
    "run_id": "VARCHAR",
    "dimension": "VARCHAR",
    "gap": "DOUBLE",
    "gap_ci_low": "DOUBLE",
    "gap_ci_high": "DOUBLE",
    "ratio": "DOUBLE",
    "ratio_ci_low": "DOUBLE",
    "ratio_ci_high": "DOUBLE",  # null with a low end: unbounded (the best slice had no errors in some replicates)
    "worst": "VARCHAR",
    "best": "VARCHAR",
    "worst_wer": "DOUBLE",
    "best_wer": "DOUBLE",
}
TABLES = {"runs": RUNS, "slices": SLICES, "disparity": DISPARITY}

_RUN_STAMP = re.compile(r"-(\d{8}T\d{6}Z)(?:-\d+)?$")  # store.new_run_dir: <name>-<UTC start>[-n]
_LOCK_MESSAGE = re.compile(r"\block\b|conflict", re.IGNORECASE)
_MAX_LISTED = 40


# ---------------------------------------------------------------------------------------------- writing


def record_run(db_path: Path, run_dir: Path, metrics: dict[str, Any], *, lock_wait_s: float = LOCK_WAIT_S) -> bool:
    """Append one finished run (its metrics.json content) to the history database, replacing any
    rows it already has. Never raises: on failure log a warning and return False."""
    try:
        rows = run_rows(run_dir, metrics)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        _retrying(lock_wait_s)(_replace_run, db_path, run_dir.name, rows)
    except Exception as exc:  # the run's own files are the record; never lose or fail a run over its history
        log.warning(
            "run history %s not updated (%s: %s); the results are in %s", db_path, type(exc).__name__, exc, run_dir
        )
        log.debug("history write failed", exc_info=True)
        return False
    log.debug("recorded %s in %s", run_dir.name, db_path)
    return True


def run_rows(run_dir: Path, metrics: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """The rows of each history table for one run, typed as its columns."""
    run_id = run_dir.name
    dimensions = metrics.get("dimensions") or []
    slices = [_slice_row(run_id, d["name"], s) for d in dimensions for s in d.get("slices") or []]
    disparity = [_disparity_row(run_id, d["name"], d.get("disparity") or {}) for d in dimensions]
    return {
        "runs": _frame([_run_row(run_dir, metrics)], RUNS),
        "slices": _frame(slices, SLICES),
        "disparity": _frame(disparity, DISPARITY),
    }


def _run_row(run_dir: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    provenance = metrics.get("provenance") or {}
    backend = provenance.get("backend") or {}
    overall = metrics.get("overall") or {}
    failures = metrics.get("failures") or {}
    return {
        "run_id": run_dir.name,
        "run_name": provenance.get("run_name"),
        "run_dir": str(run_dir.resolve()),
        "started_utc": _started(run_dir, provenance),
        "finished_utc": _utc(provenance.get("finished_utc") or provenance.get("created_utc")),
        "rescored_utc": _utc(provenance.get("rescored_utc")),
        "recorded_utc": datetime.now(UTC).replace(tzinfo=None),
        "backend": backend.get("name"),
        "backend_id": backend.get("id"),
        "manifest_sha256": (provenance.get("manifest") or {}).get("sha256"),
        "normalizer": provenance.get("normalizer"),
        "normalizer_sha256": (provenance.get("normalizer_definition") or {}).get("sha256"),
        "normalizers_compared": ",".join(n["stamp"] for n in provenance.get("normalizers_compared") or []) or None,
        "scorer_version": provenance.get("scorer_version"),
        "jiwer_version": (provenance.get("scorer") or {}).get("version"),
        "model_revision": None if backend.get("model_revision") is None else str(backend["model_revision"]),
        "aggregate": metrics.get("aggregate"),
        "confidence": (metrics.get("stats") or {}).get("confidence"),
        **_wer_columns(overall),
        "failures": failures.get("count"),
        "failure_rate": failures.get("rate"),
        "git_sha": provenance.get("git_sha"),
        "harness_version": provenance.get("harness_version"),
        "metrics_schema": metrics.get("schema"),
        "provenance": json.dumps(provenance, default=str),
    }


def _slice_row(run_id: str, dimension: str, slice_: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run_id, "dimension": dimension, "label": slice_.get("label"), **_wer_columns(slice_)}


def _wer_columns(block: dict[str, Any]) -> dict[str, Any]:
    low, high = _pair(block.get("wer_ci"))
    counts = {key: block.get(key) for key in ("words", "speakers", "utterances", "failed", "supported")}
    return {"wer": block.get("wer"), "wer_ci_low": low, "wer_ci_high": high, **counts}


def _disparity_row(run_id: str, dimension: str, disparity: dict[str, Any]) -> dict[str, Any]:
    gap_low, gap_high = _pair(disparity.get("gap_ci"))
    ratio_low, ratio_high = _pair(disparity.get("ratio_ci"))
    keep = ("gap", "ratio", "worst", "best", "worst_wer", "best_wer")
    return {
        "run_id": run_id,
        "dimension": dimension,
        **{key: disparity.get(key) for key in keep},
        "gap_ci_low": gap_low,
        "gap_ci_high": gap_high,
        "ratio_ci_low": ratio_low,
        "ratio_ci_high": ratio_high,
    }


def _pair(ci: list[float | None] | None) -> tuple[float | None, float | None]:
    return (ci[0], ci[1]) if ci else (None, None)


def _started(run_dir: Path, provenance: dict[str, Any]) -> datetime | None:
    """The run's start: from provenance when it says so, else the run directory's timestamp."""
    if provenance.get("started_utc"):
        return _utc(provenance["started_utc"])
    match = _RUN_STAMP.search(run_dir.name)
    if match:
        return datetime.strptime(match[1], "%Y%m%dT%H%M%SZ")
    return _utc(provenance.get("created_utc"))


def _utc(text: str | None) -> datetime | None:
    """An ISO timestamp as naive UTC (the history's TIMESTAMP columns are all UTC)."""
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> dict[str, np.ndarray]:
    """The rows as the NumPy columns DuckDB inserts from (no pandas: a run records itself without it)."""
    return duckdb_columns({name: [row.get(name) for row in rows] for name in columns}, columns)


def _replace_run(db_path: Path, run_id: str, rows: dict[str, dict[str, np.ndarray]]) -> None:
    """One short transaction: the connection (and so the file lock) is held only for it. If
    anything fails before the commit, closing the connection discards the whole transaction."""
    with connect(db_path) as con:
        con.begin()
        write_rows(con, run_id, rows)
        con.commit()


def write_rows(con: duckdb.DuckDBPyConnection, run_id: str, rows: dict[str, dict[str, np.ndarray]]) -> None:
    """Create or extend the schema, drop the run's old rows and insert the new ones (no commit)."""
    ensure_schema(con)
    for table, frame in rows.items():
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        con.register("incoming", frame)
        try:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
        finally:
            con.unregister("incoming")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Tables made on first use; columns a newer harness added are added to an older file."""
    for table, columns in TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
        present = {column for column, *_ in con.execute(f"SELECT * FROM {table} LIMIT 0").description}
        for column, kind in columns.items():
            if column not in present:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def connect(db_path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the history database, refusing a file that is not DuckDB's by its header."""
    if db_path.exists() and not db_path.is_file():  # opening a FIFO would block
        raise InputError(f"{db_path}: not a regular file; set 'history:' to a .duckdb file path")
    try:
        with db_path.open("rb") as handle:
            header = handle.read(16)
    except FileNotFoundError:
        header = b""  # a new database
    except OSError as exc:
        raise InputError(
            f"{db_path}: cannot read the history database ({exc.strerror}); set 'history:' elsewhere"
        ) from None
    if header and header[8:12] != b"DUCK":
        kind = "a SQLite database" if header.startswith(b"SQLite format 3") else "not a DuckDB database"
        raise InputError(f"{db_path}: {kind}; set 'history:' to a .duckdb file (a new path starts a new history)")
    return duckdb.connect(str(db_path), read_only=read_only, config=NO_DUCKDB_EXTENSIONS)


def _retrying(wait_s: float) -> Retrying:
    """Retry while another process holds the file's lock: full-jitter exponential backoff."""
    return Retrying(
        retry=retry_if_exception(_locked),
        stop=stop_before_delay(wait_s),
        wait=wait_random_exponential(multiplier=0.02, max=1.0),
        before_sleep=before_sleep_log(log, logging.DEBUG),
        reraise=True,
    )


def _locked(exc: BaseException) -> bool:
    """DuckDB's 'Could not set lock on file ...' (another process has it open) or a write conflict."""
    return isinstance(exc, duckdb.IOException | duckdb.TransactionException) and bool(_LOCK_MESSAGE.search(str(exc)))


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class History:
    runs: pd.DataFrame  # one row per run (the runs table's columns), oldest first
    slices: pd.DataFrame  # the slices rows of those runs


def load_history(
    db_path: Path, *, name: str | None = None, last: int = 30, lock_wait_s: float = LOCK_WAIT_S
) -> History:
    """The most recent ``last`` runs (of run name ``name``), read through a short read-only connection."""
    if last < 1:
        raise InputError(f"--last {last}: must be at least 1")
    if not db_path.exists():
        raise InputError(f"no history at {db_path}; runs record there after 'asrfair run'")
    try:
        with _retrying(lock_wait_s)(connect, db_path, read_only=True) as con:
            if not con.execute(_HAS_RUNS_TABLE).fetchone()[0]:
                # a run killed before its first record committed leaves an empty database file
                raise InputError(f"{db_path}: no runs recorded; runs record there after 'asrfair run'")
            runs = con.execute(_RECENT_RUNS, {"name": name, "last": last}).df()
            ids = {"ids": runs["run_id"].tolist()}
            slices = con.execute("SELECT * FROM slices WHERE list_contains($ids, run_id)", ids).df()
            names = con.execute(_RUN_NAMES).fetchone()[0] if runs.empty else None
    except duckdb.Error as exc:
        raise InputError(f"{db_path}: cannot read the run history ({exc})") from None
    if runs.empty:
        within = f"no runs named '{name}'" if name else "no runs"
        raise InputError(f"{db_path}: {within} recorded; run names: {names or 'none'}")
    return History(runs, slices)


_HAS_RUNS_TABLE = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'"
_RUN_NAMES = "SELECT string_agg(DISTINCT run_name, ', ' ORDER BY run_name) FROM runs"
_RECENT_RUNS = """
SELECT * FROM (
    SELECT * FROM runs WHERE $name IS NULL OR run_name = $name
    ORDER BY started_utc DESC NULLS LAST, recorded_utc DESC, run_id DESC
    LIMIT $last
) ORDER BY started_utc NULLS FIRST, recorded_utc, run_id
"""


def parse_slices(specs: list[str], slices: pd.DataFrame, runs: int) -> pd.DataFrame:
    """``dimension=label`` strings as (dimension, label) rows; each must occur in the runs shown."""
    import pandas as pd

    wanted = pd.DataFrame([_split(spec) for spec in specs], columns=["dimension", "label"]).drop_duplicates()
    known = slices[["dimension", "label"]].drop_duplicates().sort_values(["dimension", "label"])
    available = [f"{dimension}={label}" for dimension, label in known.itertuples(index=False)]
    for spec, (dimension, label) in zip(specs, map(_split, specs), strict=True):
        key = f"{dimension}={label}"
        if key not in available:
            close = difflib.get_close_matches(key, available, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise InputError(
                f"--slice {spec}: no such slice in the {runs} runs shown; {hint}available: {_listing(available)}"
            )
    return wanted


def _listing(items: list[str]) -> str:
    more = len(items) - _MAX_LISTED
    return (", ".join(items[:_MAX_LISTED]) + (f" (and {more} more)" if more > 0 else "")) or "none"


def _split(spec: str) -> tuple[str, str]:
    dimension, sep, label = spec.partition("=")
    if not sep or not dimension.strip() or not label.strip():
        raise InputError(f"--slice {spec}: expected dimension=label, e.g. accent=scottish")
    return dimension.strip(), label.strip()


def trend_frame(history: History, wanted: pd.DataFrame) -> pd.DataFrame:
    """Long form, one row per run and series: ``overall`` and each wanted ``dimension=label``."""
    import pandas as pd

    keep = ["run_id", "wer", "wer_ci_low", "wer_ci_high", "words", "speakers", "utterances"]
    overall = history.runs[[*keep, "failures"]].rename(columns={"failures": "failed"}).assign(series="overall")
    picked = wanted.merge(history.slices, on=["dimension", "label"])  # in the order asked for
    picked = picked.assign(series=picked["dimension"] + "=" + picked["label"])[[*keep, "failed", "series"]]
    picked = picked.drop_duplicates(["run_id", "series"])  # a slice file may list a dimension twice
    frame = pd.concat([overall, picked], ignore_index=True)
    started = history.runs[["run_id", "started_utc", "backend", "backend_id"]]
    return frame.merge(started, on="run_id")
