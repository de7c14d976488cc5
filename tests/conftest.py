"""Shared fixtures: small real audio files and manifests made on the fly, plus demo-corpus subsets."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download models

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "datasets" / "demo"


def write_tone(path: Path, seconds: float = 0.5, rate: int = 16_000, channels: int = 1) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.1 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate)
    return path


def write_jsonl(path: Path, records: Sequence[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def tone(tmp_path: Path) -> Path:
    return write_tone(tmp_path / "tone.wav")


@pytest.fixture
def make_manifest(tmp_path: Path, tone: Path) -> Callable[..., Path]:
    """``make_manifest(records)``: a JSONL manifest beside a real WAV; ``audio`` defaults to it."""

    def make(records: Sequence[dict], name: str = "manifest.jsonl") -> Path:
        full = [{"audio": tone.name, **r} for r in records]
        return write_jsonl(tmp_path / name, full)

    return make


def demo_records(per_dialect: int, into: Path) -> list[dict]:
    """The first ``per_dialect`` clips of each demo dialect, their audio copied under ``into``
    (a manifest's audio must lie in its folder), paths relative to ``into``."""
    records = [json.loads(line) for line in (DEMO / "manifest.jsonl").read_text().splitlines()]
    chosen: dict[str, list[dict]] = {}
    for record in records:
        bucket = chosen.setdefault(record["dialect"], [])
        if len(bucket) < per_dialect:
            target = into / record["audio"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DEMO / record["audio"], target)
            bucket.append(record)
    return [r for bucket in chosen.values() for r in bucket]


def install_backend_plugin(folder: Path, module: str, source: str, backend: str, cls: str) -> Path:
    """A real third-party backend package in ``folder`` (put it on PYTHONPATH): the module plus a
    dist-info whose ``asrfair.backends`` entry point registers ``module:cls`` as ``backend``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(source, encoding="utf-8")
    dist = folder / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[asrfair.backends]\n{backend} = {module}:{cls}\n")
    return folder


def write_config(path: Path, dataset: Path, backend: dict, **extra: object) -> Path:
    import yaml

    data = {
        "version": 1,
        "name": "test",
        "dataset": str(dataset),
        "backend": backend,
        "stats": {"min_speakers": 1, "min_words": 1},
        "output": str(path.parent / "runs"),
        **extra,
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


def accent_records(
    speakers: int, per_speaker: int, accents: Sequence[str] = ("scottish", "welsh", "general")
) -> list[dict]:
    """Manifest records: ``speakers`` per accent, ``per_speaker`` 10-word utterances each, ids
    ``accent-speaker-n`` (the stub backend needs no decoding, so one tone serves every clip)."""
    return [
        {
            "id": f"{accent}-{speaker}-{n}",
            "text": " ".join(WORDS[(n + k) % 10] for k in range(10)),
            "speaker": f"{accent}{speaker}",
            "accent": accent,
        }
        for accent in accents
        for speaker in range(speakers)
        for n in range(per_speaker)
    ]
