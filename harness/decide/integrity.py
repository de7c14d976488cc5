"""Run directories are asrfair's own output: a file changed after scoring wrote it is refused up front.

A hand-edited or corrupted metrics.json or utterances.parquet used to fail deep inside whichever
command read it (an internal error, exit 4). Scoring now records the SHA-256 of each file it
read or wrote in ``checksums.json``; readers check them first and name the changed file (exit 2).
A directory without ``checksums.json`` (written before it existed, or whose scoring was
interrupted) is read as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.data.audio import file_sha256
from harness.errors import InputError
from harness.files import write_json

SEAL = "checksums.json"
SEALED = ("config.yaml", "transcripts.parquet", "utterances.parquet", "provenance.json", "metrics.json")


def unseal(root: Path) -> None:
    """Before scoring rewrites the files: an interrupted rescore leaves no stale checksums."""
    (root / SEAL).unlink(missing_ok=True)


def seal(root: Path) -> None:
    """Record the checksum of every sealed file present (after metrics.json, the last one written)."""
    write_json(root / SEAL, {name: file_sha256(root / name) for name in SEALED if (root / name).is_file()})


def check_sealed(root: Path) -> None:
    """An InputError naming the first file whose content differs from what scoring wrote."""
    path = root / SEAL
    if not path.is_file():
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc}); delete it to read the run as it is") from None
    if not isinstance(recorded, dict):
        raise InputError(f"{path}: not a mapping of file names to checksums; delete it to read the run as it is")
    for name in SEALED:
        target = root / name
        if name in recorded and target.is_file() and file_sha256(target) != recorded[name]:
            raise InputError(
                f"{target}: changed since asrfair wrote it (its SHA-256 differs from {SEAL}); restore it, "
                f"or delete {SEAL} to read the run as it is now"
            )
