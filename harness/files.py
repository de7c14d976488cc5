"""Where results live: run directories, and the atomic writes every output goes through."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd  # write_parquet's argument: reading a saved run's metrics needs no pandas

METRICS_SCHEMA = "asrfair.metrics/6"
# Versions whose ``provenance`` block — all that discover, verify, gate and a re-score read — is the
# current one: /6 changed statistics fields only (docs/metrics.md, "Changes").
METRICS_PROVENANCE_SCHEMAS = ("asrfair.metrics/5", METRICS_SCHEMA)


def check_metrics_schema(metrics: Any, path: Path, *, provenance_only: bool = False) -> None:
    """InputError (exit 2) unless ``metrics`` (a run's metrics.json, read from ``path``) has a schema
    this version reads: the current one, or with ``provenance_only`` also an older one whose
    provenance block is unchanged. A report is never rendered from an older file's statistics."""
    schema = metrics.get("schema") if isinstance(metrics, dict) else None
    readable = METRICS_PROVENANCE_SCHEMAS if provenance_only else (METRICS_SCHEMA,)
    if schema in readable:
        return
    run_dir = path.parent
    raise InputError(
        f"{path}: metrics schema {schema!r} is not supported here (this asrfair writes {METRICS_SCHEMA} and "
        f"reads {', '.join(readable)}); re-score the run to rewrite it:  'asrfair score {run_dir}'"
    )


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def transcripts(self) -> Path:
        return self.root / "transcripts.parquet"

    @property
    def utterances(self) -> Path:
        return self.root / "utterances.parquet"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def provenance(self) -> Path:
        return self.root / "provenance.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def discovery(self) -> Path:
        return self.root / "discovery.json"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    def completion_hint(self) -> str:
        """How to finish a directory whose scoring was interrupted (no metrics.json)."""
        if self.utterances.is_file() and self.provenance.is_file():
            return f"'asrfair score {self.root}' completes it"
        return (
            f"rerun `asrfair run CONFIG` with the config that made it (a copy: {self.config}) to resume; "
            "its transcripts are cached"
        )


def new_run_dir(parent: Path, name: str, now: datetime | None = None) -> RunPaths:
    """``<parent>/<name>-<UTC timestamp>/``, never reusing an existing directory."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    root = parent / f"{name}-{stamp}"
    suffix = 1
    while root.exists():
        suffix += 1
        root = parent / f"{name}-{stamp}-{suffix}"
    try:
        root.mkdir(parents=True)
    except OSError as exc:
        raise InputError(
            f"{parent}: cannot create the run directory ({exc.strerror}); choose another --output"
        ) from None
    return RunPaths(root)


def open_run_dir(path: Path) -> RunPaths:
    paths = RunPaths(path)
    if paths.config.is_file() and not paths.transcripts.is_file():  # made by a run stopped while transcribing
        raise InputError(f"{path}: an interrupted run (no metrics.json yet); {paths.completion_hint()}")
    for needed in (paths.config, paths.transcripts):
        if not needed.is_file():
            raise InputError(
                f"{path}: not a finished run directory ({needed.name} missing); pass a directory made by 'asrfair run'"
            )
    return paths


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_table(path: Path, columns: Mapping[str, Sequence[Any]], types: Mapping[str, str]) -> None:
    """Columns of Python values as a Parquet file with these DuckDB column types. DuckDB writes it
    from NumPy arrays, which needs no pandas (pyarrow imports pandas on its first array)."""
    import duckdb

    arrays = duckdb_columns(columns, types)
    select = ", ".join(f'CAST("{name}" AS {kind}) AS "{name}"' for name, kind in types.items())

    def write(tmp: Path) -> None:
        target = os.path.abspath(tmp).replace("'", "''")  # absolute: DuckDB would expand a leading ~
        try:
            with duckdb.connect(config=NO_DUCKDB_EXTENSIONS) as con:
                con.register("incoming", arrays)
                con.execute(f"COPY (SELECT {select} FROM incoming) TO '{target}' (FORMAT parquet)")
        except duckdb.Error as exc:  # a full disk, a missing folder: write_atomic's one-line error
            raise OSError(errno.EIO, str(exc).splitlines()[0]) from None

    write_atomic(path, write)


# DuckDB would install and load an extension to read a foreign file format: never here.
NO_DUCKDB_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def duckdb_columns(columns: Mapping[str, Sequence[Any]], types: Mapping[str, str]) -> dict[str, np.ndarray]:
    """NumPy columns DuckDB scans as a table, typed as pandas would type them: None is NaN in a
    DOUBLE or BIGINT column (DuckDB reads NaN there as NULL), NaT in a TIMESTAMP one."""
    import numpy as np

    typed = {"DOUBLE": np.float64, "BIGINT": np.float64, "TIMESTAMP": "datetime64[us]"}
    arrays = {}
    for name, kind in types.items():
        values = list(columns[name])
        if kind == "BIGINT" and all(type(v) is int for v in values):
            arrays[name] = np.array(values, dtype=np.int64)
        elif kind == "BOOLEAN" and None not in values:
            arrays[name] = np.array(values, dtype=bool)
        else:
            arrays[name] = np.array(values, dtype=typed.get(kind, object))
    return arrays


def replace_quietly(path: Path, text: str) -> None:
    """Write a cache file's ``text`` whole or not at all, from a temporary file of this writer's own
    (concurrent writers never share one); failing only costs a later run the work the file saves."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(name, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` beside the target, then rename: an interrupted write never leaves a truncated
    file, and a full or read-only disk is a one-line error naming the file (exit 2), not a traceback.

    A target that exists and is not a regular file (``/dev/null``, ``/dev/stdout``, a FIFO) is
    written through, never replaced: renaming over a device node would break it for the machine."""
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = stat.S_IFREG  # absent (or unreadable: the write below names why)
    if not stat.S_ISREG(mode):
        _write_through(path, write, mode)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({os_reason(exc)}); free disk space or write elsewhere") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _write_through(path: Path, write: Callable[[Path], object], mode: int) -> None:
    """Write into an existing non-regular file (a device, a FIFO) in place, from a private temporary copy."""
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: cannot write (it is a directory); name a file to write")
    try:
        with tempfile.TemporaryDirectory(prefix="asrfair-") as folder:
            tmp = Path(folder) / path.name  # same name: writers pick the format by the suffix
            write(tmp)
            with tmp.open("rb") as source, path.open("wb") as target:
                shutil.copyfileobj(source, target)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({os_reason(exc)}); write to a regular file instead") from None


def os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc).splitlines()[0] or type(exc).__name__
