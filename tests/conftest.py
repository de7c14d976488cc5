"""Shared fixtures: small real audio files and manifests made on the fly, plus demo-corpus subsets.

How to write a test here (the suite must pass on a loaded 2-core CI machine, in any order):

- The CLI: ``from cli import asrfair, start, finish, invoke`` (tests/cli.py). ``invoke(*args)`` runs a
  command in-process (no interpreter start-up: use it when the test is about what the command
  computes or prints); ``asrfair(*args)`` runs a real process (exit status of a process, stdout vs
  stderr, plugins on PYTHONPATH, signals via ``start``/``finish``). Each returns a CompletedProcess.
- A remote backend: add its fake to tests/fakes/ and one ``Remote`` to ``REMOTES`` in
  tests/test_backend_contract.py; the contract (exact transcripts, retries, per-utterance failures,
  rejected and missing keys, secrets, fingerprint) then runs on it. Put only its wire format
  (query, body, job lifecycle) in test_backend_<name>.py, using the ``corpus`` and ``oracle`` fixtures.
- Time: never assert on how long something took. Wait for an event (a file, a log line, a request
  count) with a generous deadline (60-120 s) that only fails when the event never comes.
- Isolation: ``make test`` runs two pytest-xdist workers side by side (``-n 2 --dist loadfile``: a
  file's tests stay together in one worker). Write under ``tmp_path``, never into the repo or a fixed
  /tmp path; bind servers to port 0 (``LoopbackServer``; ``free_port`` only for a command that needs a
  number, retrying if the port was taken meanwhile); signal only the processes the test started; no
  module-level state that one test sets and another reads.
- Cost: mark a test that runs a real model or takes more than ~10 s on an idle machine with
  ``@pytest.mark.slow``; ``pytest -m "not slow"`` is the quick subset, ``make test`` runs everything.
  Share an expensive result through a session- or module-scoped fixture instead of recomputing it.
"""

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


def install_plugin(folder: Path, module: str, source: str, group: str, name: str, target: str) -> Path:
    """A real third-party package in ``folder`` (put it on PYTHONPATH or sys.path): the module plus a
    dist-info whose ``group`` entry point registers ``module:target`` as ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(source, encoding="utf-8")
    dist = folder / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{name} = {module}:{target}\n")
    return folder


def install_backend_plugin(folder: Path, module: str, source: str, backend: str, cls: str) -> Path:
    """:func:`install_plugin` for the ``asrfair.backends`` group."""
    return install_plugin(folder, module, source, "asrfair.backends", backend, cls)


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


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """12 tone clips of distinct lengths, two accents (northern, southern), three speakers each."""
    from loopback import tone_corpus

    return tone_corpus(tmp_path, 12)


@pytest.fixture
def oracle(corpus: Path):
    """A recogniser for fake servers that answers each clip of ``corpus`` with its reference text."""
    from loopback import Oracle

    return Oracle.for_manifest(corpus)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("asrfair")
    group.addoption(
        "--test-order",
        choices=("file", "reverse", "shuffle"),
        default="file",
        help="run modules, and the tests within each, in file order, reversed, or shuffled (proves the "
        "suite is order-independent; modules stay whole so module fixtures are built once)",
    )
    group.addoption("--test-order-seed", type=int, default=0, help="the seed of --test-order shuffle")


# The files that take longest (sum of their tests' --durations in a full `make test`, docs/PERFORMANCE.md),
# longest first. Under xdist (`--dist loadfile` hands out whole files in collection order) they start
# first, so the run does not end with one worker alone on a long file. Only balance depends on this.
LONGEST_FIRST = (
    "tests/test_calibration.py",
    "tests/reliability/test_fuzz_inputs.py",
    "tests/test_study.py",
    "tests/test_ray_executor.py",
    "tests/test_gate.py",
    "tests/test_normalization.py",
    "tests/test_power.py",
    "tests/test_discover.py",
    "tests/test_degradation_stats.py",
    "tests/test_cli.py",
    "tests/test_backend_contract.py",
    "tests/test_conditions.py",
    "tests/reliability/test_crash_resume.py",
    "tests/test_results.py",
)


def pytest_configure(config: pytest.Config) -> None:
    # xdist's loadfile would otherwise hand out files by their number of tests, most first, undoing
    # both LONGEST_FIRST and --test-order (the same as passing --no-loadscope-reorder)
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reorder whole modules (xdist's workers each run this on their own identical collection, so the
    seeded shuffle agrees across them). File order on a parallel run puts LONGEST_FIRST ahead."""
    order = config.getoption("--test-order")
    parallel = hasattr(config, "workerinput")  # this process is a pytest-xdist worker
    if order == "file" and not parallel:
        return
    import random

    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    groups = list(modules.values())
    if order == "file":
        rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
        groups.sort(key=lambda group: rank.get(group[0].nodeid.split("::")[0], len(rank)))  # stable
    elif order == "reverse":
        groups = [group[::-1] for group in groups[::-1]]
    else:
        rng = random.Random(config.getoption("--test-order-seed"))
        rng.shuffle(groups)
        for group in groups:
            rng.shuffle(group)
    items[:] = [item for group in groups for item in group]
