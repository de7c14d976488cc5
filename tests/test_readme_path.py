"""README's "your model, your data" path, walked as a new user walks it: a fresh git clone, the
manifest and config README shows saved where it says, and its shell blocks run exactly as written.

The one change is the backend: the deterministic stub instead of README's faster-whisper, so the
walk needs no model and takes seconds. Everything else is parsed from README, so it cannot drift.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, write_tone
from test_docs import split_fences

SECTION = "## Your model, your data: three steps"
STUB = {"name": "stub", "default_rate": 0.05, "error_rates": {"accent": {"scottish": 0.3}}, "seed": 0}


def readme_path() -> tuple[str, list[tuple[str, str]]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert SECTION in text, "README lost its 'your model, your data' section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return split_fences(section)


def test_readme_path_opens_the_readme():
    """The path comes right after the two first commands, which CI and new users run as written."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    _, blocks = split_fences(text.split("\n## ", 1)[0])
    first, second = blocks[0][1].splitlines()[:2]
    assert first.startswith("make demo ") and second.startswith("make test "), "CI runs README's 'make test'"
    assert text.index(SECTION) < text.index("## What it measures")


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout")
    target = tmp_path / "asrfair"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True, timeout=300)
    return target


@pytest.fixture
def shell_env(tmp_path: Path, clone: Path) -> dict[str, str]:
    """``asrfair`` on PATH running the clone's code, as ``pip install -e .`` would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "asrfair"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m harness "$@"\n')
    script.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(clone),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "160",
    }


def test_walk_the_readme_path_from_a_fresh_clone(clone, shell_env):
    prose, blocks = readme_path()
    saves = re.findall(r"Save [^`]*? as `([^`]+)`", prose)
    (manifest_text,) = [body for lang, body in blocks if lang == "json"]
    (config_text,) = [body for lang, body in blocks if lang == "yaml"]
    shells = [body for lang, body in blocks if lang == "bash"]
    assert len(saves) == 2 and len(shells) >= 3, (saves, len(shells))

    where = subprocess.run(
        [sys.executable, "-c", "import harness; print(harness.__file__)"], env=shell_env, cwd=clone,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(clone), "the walk must run the clone's code"

    # step 1: the user's data, as README shows it, with real audio where its lines point
    manifest = clone / saves[0]
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(manifest_text + "\n", encoding="utf-8")
    records = [json.loads(line) for line in manifest_text.splitlines()]
    for i, record in enumerate(records):
        (manifest.parent / record["audio"]).parent.mkdir(parents=True, exist_ok=True)
        write_tone(manifest.parent / record["audio"], seconds=0.3 + 0.05 * i)

    # step 2: README's config, the backend swapped for the stub
    config = yaml.safe_load(config_text)
    assert config["backend"]["name"] == "faster-whisper", "README shows a real model"
    config["backend"] = STUB
    (clone / saves[1]).parent.mkdir(parents=True, exist_ok=True)
    (clone / saves[1]).write_text(yaml.safe_dump(config), encoding="utf-8")

    outputs = []
    for block in shells:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=clone, env=shell_env,
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{block}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr
        outputs.append(result)

    validate, run, *_ = outputs
    assert f"{len(records)} utterances, 2 speakers" in validate.stdout
    assert "WER by accent" in run.stdout and "run directory: runs/mine-" in run.stderr
    (run_dir,) = (clone / "runs").glob(f"{config['name']}-*")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["overall"]["utterances"] == len(records)
    overall = metrics["overall"]
    assert overall["wer"] == pytest.approx(overall["errors"] / overall["words"])
    (accent,) = [d for d in metrics["dimensions"] if d["name"] == "accent"]
    wer = {s["label"]: s["wer"] for s in accent["slices"]}
    assert wer.keys() == {"scottish", "american"} and wer["scottish"] > wer["american"]  # the stub's planted gap
    assert (run_dir / "report.html").stat().st_size > 0 and (run_dir / "report.md").is_file()
    assert (clone / "baselines" / "mine.json").is_file() and (run_dir / "gate.md").is_file()
