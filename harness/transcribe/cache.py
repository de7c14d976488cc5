"""The transcript cache (SQLite): what each backend heard and said, so nothing is transcribed twice.

The cache is keyed by backend fingerprint + what the backend heard, so a rerun, or a run that
was interrupted, resumes without transcribing anything twice. Each batch is committed as it
finishes, and a remote backend's transcripts one by one as they arrive. Only successful
transcripts are cached: a failure is retried on the next run.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from harness.backends.base import Transcript
from harness.errors import InputError
from harness.files import os_reason

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transcripts (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    utterance_id TEXT NOT NULL,
    text TEXT NOT NULL,
    latency_s REAL NOT NULL,
    created_utc TEXT NOT NULL
)
"""


def cache_key(fingerprint_id: str, request_key: str) -> str:
    return hashlib.sha256(f"{fingerprint_id}|{request_key}".encode()).hexdigest()


class TranscriptCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists() and not path.is_file():  # SQLite would add path-journal beside a device or FIFO
            raise InputError(f"{path}: the transcript cache must be a regular file; set 'cache:' to a file path")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # A commit survives kill -9 once written to the WAL; NORMAL skips the fsync per commit that
            # only a power cut needs (still never corrupt), so committing each remote transcript is cheap.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except OSError as exc:
            raise InputError(
                f"{path.parent}: cannot create the cache folder ({os_reason(exc)}); set 'cache:' elsewhere"
            ) from None
        except sqlite3.OperationalError as exc:  # read-only or full disk: the file itself may be fine
            raise InputError(f"{path}: cannot open the transcript cache ({exc}); set 'cache:' elsewhere") from None
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{path}: transcript cache unusable ({exc}); delete it to start afresh") from None

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, float]]:
        found: dict[str, tuple[str, float]] = {}
        for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, text, latency_s FROM transcripts WHERE key IN ({marks})"
            found.update((k, (t, lat)) for k, t, lat in self._db.execute(query, chunk))
        return found

    def put_many(self, rows: Iterable[tuple[str, str, Transcript]]) -> None:
        """Store ``(key, backend_fingerprint_id, transcript)`` for successful transcripts."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            with self._db:  # one transaction: a batch is cached whole or not at all
                self._db.executemany(
                    "INSERT OR REPLACE INTO transcripts VALUES (?, ?, ?, ?, ?, ?)",
                    [(k, fp, t.id, t.text, t.latency_s, now) for k, fp, t in rows if t.status == "ok"],
                )
        except sqlite3.OperationalError as exc:  # disk full, read-only: earlier batches stay cached
            raise InputError(
                f"{self.path}: cannot write the transcript cache ({exc}); free disk space or set 'cache:' elsewhere, "
                "then rerun to resume"
            ) from None

    def close(self) -> None:
        self._db.close()


