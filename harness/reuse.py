"""A rerun whose scores cannot differ reuses them (issue 28: the warm rerun).

Scoring is a pure, seeded function of the utterance rows (ids, references, tags, clip lengths,
transcripts), the slices, the normalisers, the resolved config and provenance, the harness's own
files and the libraries that compute and render the numbers. :func:`score_key` hashes all of
them. Every scoring of a run is stored under the transcript cache's folder (``scores/<key>/``)
with its creation time left as a placeholder (scored in a staging folder there, never in the run
directory), and every run — cold or warm — writes its run directory from that entry, stamped with
its own time. A rerun whose key matches therefore writes the very bytes a fresh scoring would,
without importing or running the statistics and report stack. Anything that changes a number
changes the key and the run is scored afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.backends.base import Transcript
from harness.data.audio import clip_seconds
from harness.data.manifest import Utterance
from harness.decide.integrity import SEAL, seal, unseal
from harness.errors import InputError
from harness.files import replace_quietly, write_atomic

log = logging.getLogger(__name__)

KEEP = 8  # scorings kept per cache folder (the demo's is ~0.4 MB; one per config/data variant)
_NOT_SCORED = frozenset({"config.yaml", "transcripts.parquet", SEAL})  # written by every run itself
_INDEX = ".index.json"  # the placeholder and each file's SHA-256: a damaged entry is never used
# The libraries whose versions can change a number or a rendered byte of a scoring.
_LIBRARIES = (
    "numpy", "pandas", "scipy", "statsmodels", "formulaic", "patsy", "jiwer", "rapidfuzz", "regex",
    "whisper-normalizer", "pyarrow", "jinja2", "markupsafe", "pydantic",
)  # fmt: skip
_HARNESS = Path(__file__).parent


def frame_rows(
    utterances: Sequence[Utterance], transcripts: Mapping[str, Transcript], file_seconds: Mapping[Path, float]
) -> list[dict[str, Any]]:
    """One row per utterance: speaker, tags, raw reference and hypothesis, status and error, and
    the clip's length in seconds (``audio_s``, null when unknown: the runaway ``rate`` rule's input;
    from ``file_seconds``, the manifest check's header lengths, where it has the file).

    Utterances without an ``ok`` transcript keep their row with ``status`` and ``error`` set and
    no hypothesis: they are reported as failures per slice, never scored as empty transcripts.
    """
    rows = []
    for utt in utterances:
        transcript = transcripts.get(utt.id)
        ok = transcript is not None and transcript.status == "ok"
        rows.append(
            {
                "id": utt.id,
                "speaker": utt.speaker,
                "language": utt.language,
                **utt.tags,
                "status": transcript.status if transcript else "missing",
                "error": None if ok else (transcript.error if transcript else "no transcript"),
                "reference": utt.text,
                "hypothesis": transcript.text if ok else None,
                "audio_s": clip_seconds(utt, file_seconds.get(utt.audio)),
            }
        )
    return rows


def score_key(
    rows: Sequence[Sequence[dict[str, Any]]], provenance: Mapping[str, Any], inputs: Mapping[str, Any], run_parent: Path
) -> str:
    """SHA-256 of everything a scoring reads: the rows of each pass, the provenance the reports
    show (all but the creation time), the scoring inputs (slices, normalisers), the folder the run
    directory is made in (the report links audio relative to it), the harness's files and the
    libraries' versions."""
    digest = hashlib.sha256()
    shown = {k: v for k, v in provenance.items() if k != "created_utc"}
    header = {
        "provenance": shown,
        "inputs": inputs,
        "run_parent": os.path.abspath(run_parent),  # as os.path.relpath sees it for the audio links
        "harness": _harness_digest(),
        "libraries": _library_versions(),
    }
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for pass_rows in rows:  # one encoding per pass (C speed); a different key order only misses
        digest.update(b"\x00" + json.dumps(pass_rows, default=str).encode())
    return digest.hexdigest()


def new_token() -> str:
    """The placeholder a scoring is rendered with instead of its creation time (letters, digits and
    dashes only: JSON, YAML, Markdown and HTML all write it unescaped)."""
    return f"asrfair-created-{secrets.token_hex(16)}"


class ScoreStore:
    """Scorings under ``<folder>/scores/<key>/``, the newest :data:`KEEP` kept."""

    def __init__(self, cache_path: Path) -> None:
        self.folder = cache_path.parent / "scores"

    def restore(self, key: str, run_dir: Path, created_utc: str) -> dict[str, Any] | None:
        """Write the stored scoring of ``key`` into ``run_dir`` stamped ``created_utc``; its
        metrics, or None when there is none (or it is unreadable: the run is scored instead)."""
        entry = self.folder / key
        try:
            index = json.loads((entry / _INDEX).read_text(encoding="utf-8"))
            token, digests = index["token"], index["files"]
            files = {name: (entry / name).read_bytes() for name in digests}
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if "metrics.json" not in files or any(hashlib.sha256(files[n]).hexdigest() != d for n, d in digests.items()):
            log.warning("stored scoring %s is damaged; scoring afresh", entry)
            return None
        with contextlib.suppress(OSError):  # recently used: pruned last (a read-only cache still serves)
            os.utime(entry)
        log.info("scores reused: nothing that determines them changed since %s", entry)
        return stamp(run_dir, files, token, created_utc)

    def score(self, key: str, token: str, write: Callable[[Path], None]) -> dict[str, bytes]:
        """A fresh scoring's files: ``write(folder)`` writes them into a staging folder (the time as
        ``token``), which then becomes the entry of ``key``. The run directory only ever receives
        stamped files; an entry that cannot be kept only costs the next rerun its speed."""
        staging = self.folder / f".{key}.{secrets.token_hex(4)}"
        try:
            staging.mkdir(parents=True)
        except OSError as exc:
            raise InputError(f"{self.folder}: cannot write ({exc.strerror or exc}); free disk space") from None
        try:
            write(staging)
            files = {p.name: p.read_bytes() for p in staging.iterdir() if p.is_file() and p.name not in _NOT_SCORED}
            self._keep(key, staging, token, files)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return files

    def _keep(self, key: str, staging: Path, token: str, files: Mapping[str, bytes]) -> None:
        try:
            for name in _NOT_SCORED:
                (staging / name).unlink(missing_ok=True)
            digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
            (staging / _INDEX).write_text(json.dumps({"token": token, "files": digests}), encoding="utf-8")
            shutil.rmtree(self.folder / key, ignore_errors=True)
            staging.rename(self.folder / key)
            self._prune()
        except OSError as exc:
            log.warning("scores not kept for reuse in %s (%s); the run itself is complete", self.folder, exc)

    def _prune(self) -> None:
        entries = sorted(
            (p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in entries[KEEP:]:
            shutil.rmtree(old, ignore_errors=True)


def stamp(run_dir: Path, files: Mapping[str, bytes], token: str, created_utc: str) -> dict[str, Any]:
    """Write ``files`` into ``run_dir`` with ``token`` replaced by ``created_utc``, metrics.json
    last (a directory without it reads as interrupted), then seal; the metrics written."""
    marker, when = token.encode(), created_utc.encode()
    unseal(run_dir)
    (run_dir / "metrics.json").unlink(missing_ok=True)  # a cold run's, still holding the placeholder
    for name in sorted(files, key=lambda n: n == "metrics.json"):
        data = files[name].replace(marker, when)
        write_atomic(run_dir / name, lambda tmp, data=data: tmp.write_bytes(data))  # type: ignore[misc]
    seal(run_dir)
    return json.loads(files["metrics.json"].replace(marker, when))


class SliceChecks:
    """Slice checks that passed (``prepare``: every tag and value a slice names exists, and the
    dimensions that duplicate another), kept in ``slice-checks.json`` beside the transcript cache
    under the SHA-256 of everything they read: the slices, the tag rows, the harness's files and
    the libraries. A rerun with the same key skips them, and with them the pandas import that is
    most of their cost; a check that failed is never kept, so its error is raised afresh."""

    def __init__(self, cache_path: Path) -> None:
        self.path = cache_path.parent / "slice-checks.json"

    @staticmethod
    def key(slices: Sequence[Mapping[str, Any]], tags: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
        header = {"slices": slices, "tags": list(tags), "harness": _harness_digest(), "libraries": _library_versions()}
        digest = hashlib.sha256(json.dumps(header, sort_keys=True, default=str).encode())
        digest.update(b"\x00" + json.dumps(rows, default=str).encode())
        return digest.hexdigest()

    def passed(self, key: str) -> list[tuple[int, str]] | None:
        """(index, warning) of each dimension left out when ``key`` last passed; None: never passed."""
        entry = self._read().get(key)
        if not (isinstance(entry, list) and all(_is_drop(item) for item in entry)):
            return None
        return [(index, warning) for index, warning in entry]

    def keep(self, key: str, dropped: Sequence[tuple[int, str]]) -> None:
        """Record a passed check, the newest :data:`KEEP` × 4 kept (a failed write only costs a rerun the check)."""
        entries = {k: v for k, v in self._read().items() if k != key}
        entries[key] = [list(item) for item in dropped]
        replace_quietly(self.path, json.dumps(dict(list(entries.items())[-KEEP * 4 :])))

    def _read(self) -> dict[str, Any]:
        try:
            found = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}


def _is_drop(item: object) -> bool:
    return (
        isinstance(item, list) and len(item) == 2 and type(item[0]) is int and item[0] >= 0 and isinstance(item[1], str)
    )


def _harness_digest() -> str:
    """SHA-256 over the harness package's files (code, templates, data), by relative path."""
    digest = hashlib.sha256()
    for path in sorted(_HARNESS.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(str(path.relative_to(_HARNESS)).encode() + b"\x00" + path.read_bytes())
    return digest.hexdigest()


def _library_versions() -> dict[str, str | None]:
    """The installed version of each of :data:`_LIBRARIES`, from the ``name-version.dist-info``
    folder names on ``sys.path`` (the first wins, as for imports): one listing per path entry,
    where ``importlib.metadata.version`` would search the whole path once per library."""
    wanted = {_normalised(name) for name in _LIBRARIES}
    found: dict[str, str | None] = dict.fromkeys(sorted(wanted))
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            if folder.endswith(".dist-info") and "-" in folder:
                name, _, release = folder[: -len(".dist-info")].partition("-")
                key = _normalised(name)
                if key in wanted and found[key] is None:
                    found[key] = release
    return found


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()
