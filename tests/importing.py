"""Import a corpus fixture through the real CLI, then validate it and run the stub on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import REPO, write_config

FIXTURES = REPO / "tests" / "fixtures"


def asrfair(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
        check=False,
    )


@dataclass
class Imported:
    summary: dict[str, Any]  # the --json summary
    records: list[dict[str, Any]]  # the manifest's rows
    rejects: list[dict[str, Any]]  # the rejects file's rows ([] when none)
    metrics: dict[str, Any] | None  # metrics of a stub run on the manifest (the format's first import only)
    manifest: Path


_STUB_RUN_DONE: set[str] = set()  # formats whose output a stub run has read in this session


def import_validate_run(fmt: str, source: Path, tmp_path: Path, *extra: str) -> Imported:
    """``asrfair import`` → ``asrfair validate`` → ``asrfair run`` (stub); each must succeed cleanly.

    The stub run, which checks that the pipeline reads what the importer wrote, happens on the first
    import of each format in a session; validate, which checks every record and audio file, on all.
    """
    manifest = tmp_path / "dataset" / "manifest.jsonl"
    result = asrfair("import", fmt, str(source), "-o", str(manifest), "--json", *extra)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads(result.stdout)
    records = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert summary["utterances"] == len(records)
    rejects = []
    if summary["rejects"]:
        rejects = [json.loads(line) for line in Path(summary["rejects"]).read_text(encoding="utf-8").splitlines()]
    assert summary["rows"] == len(records) + len(rejects) == len(records) + sum(summary["rejected"].values())

    roots = [summary["audio_root"]] if summary["audio_root"] else []
    checked = asrfair("validate", str(manifest), *[arg for root in roots for arg in ("--audio-root", root)])
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert f"{len(records)} utterances" in checked.stdout

    if fmt in _STUB_RUN_DONE:
        return Imported(summary, records, rejects, None, manifest)
    _STUB_RUN_DONE.add(fmt)
    config = write_config(tmp_path / "run.yaml", manifest, {"name": "stub"}, audio_roots=roots)
    run = asrfair("run", str(config), "--json")
    assert run.returncode == 0, run.stderr
    metrics = json.loads(run.stdout)
    assert metrics["overall"]["utterances"] == len(records)
    assert metrics["overall"]["failed"] == 0  # every imported segment decoded
    assert metrics["overall"]["wer"] == 0.0  # the stub echoes the reference
    return Imported(summary, records, rejects, metrics, manifest)
