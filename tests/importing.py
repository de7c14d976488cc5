"""Import a corpus fixture through the CLI, then validate it and run the stub on it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli import invoke
from conftest import REPO, write_config

FIXTURES = REPO / "tests" / "fixtures"


@dataclass
class Imported:
    summary: dict[str, Any]  # the --json summary
    records: list[dict[str, Any]]  # the manifest's rows
    rejects: list[dict[str, Any]]  # the rejects file's rows ([] when none)
    metrics: dict[str, Any]  # metrics of a stub run on the manifest
    manifest: Path


def import_validate_run(fmt: str, source: Path, tmp_path: Path, *extra: str) -> Imported:
    """``asrfair import`` → ``asrfair validate`` → ``asrfair run`` (stub); each must succeed cleanly.

    Validate checks every record and audio file; the stub run, that the pipeline reads what the
    importer wrote. All three run in-process (``cli.invoke``): the commands' process behaviour is
    tested in test_cli.py and test_importers.py, and each import here pays no interpreter start-up.
    """
    manifest = tmp_path / "dataset" / "manifest.jsonl"
    result = invoke("import", fmt, str(source), "-o", str(manifest), "--json", *extra)
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
    checked = invoke("validate", str(manifest), *[arg for root in roots for arg in ("--audio-root", root)])
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert f"{len(records)} utterances" in checked.stdout

    config = write_config(tmp_path / "run.yaml", manifest, {"name": "stub"}, audio_roots=roots)
    run = invoke("run", str(config), "--json")
    assert run.returncode == 0, run.stderr
    metrics = json.loads(run.stdout)
    assert metrics["overall"]["utterances"] == len(records)
    assert metrics["overall"]["failed"] == 0  # every imported segment decoded
    assert metrics["overall"]["wer"] == 0.0  # the stub echoes the reference
    return Imported(summary, records, rejects, metrics, manifest)
