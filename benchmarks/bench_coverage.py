"""How fast is ``asrfair coverage`` on a large manifest?

  (a) baseline: the obvious pandas way, ``pd.read_json(lines=True)`` then a groupby per tag and per
      pair of tags (utterances, unique speakers, words, hours)
  (b) ``harness.stats.coverage.coverage`` on the same manifest (reading, checks, every table)

on a generated manifest (1,000,000 lines by default; 6 tags of 3–12 values, 20,000 speakers,
durations given). Prints b/a and b's seconds (goal: ≤ 10 s on 2 cores).

Whether ``asrfair plan`` delivers its power is measured by benchmarks/calibration.py (``--only
plan``), on data from a generator other than the plan's own model. Usage::

    python benchmarks/bench_coverage.py [--lines 1000000]
"""

from __future__ import annotations

import argparse
import itertools
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from harness.stats.coverage import coverage

TAGS = {
    "accent": 10,
    "dialect": 12,
    "device": 4,
    "noise": 3,
    "l1": 8,
    "region": 6,
}


def write_manifest(path: Path, lines: int) -> None:
    rng = np.random.default_rng(0)
    speakers = rng.integers(0, 20_000, lines)
    columns = {
        "id": [f"u{i}" for i in range(lines)],
        "audio": [f"clips/{i}.flac" for i in range(lines)],
        "text": "the boy was there when the sun rose",
        "speaker": [f"s{s}" for s in speakers],
        "duration": np.round(rng.uniform(1.0, 8.0, lines), 2),
    }
    for tag, values in TAGS.items():
        per_speaker = tag in ("accent", "l1", "region")  # a speaker's own tags stay the same
        draws = speakers % values if per_speaker else rng.integers(0, values, lines)
        columns[tag] = [f"{tag}{v}" for v in draws]
    pd.DataFrame(columns).to_json(path, orient="records", lines=True)


def baseline(path: Path) -> float:
    start = time.perf_counter()
    frame = pd.read_json(path, lines=True, dtype=False)
    frame["words"] = frame["text"].str.split().str.len()
    for by in [*([t] for t in TAGS), *(list(p) for p in itertools.combinations(TAGS, 2))]:
        frame.groupby(by).agg(
            utterances=("id", "size"),
            speakers=("speaker", "nunique"),
            words=("words", "sum"),
            hours=("duration", "sum"),
        )
    return time.perf_counter() - start


def timed_coverage(path: Path) -> float:
    start = time.perf_counter()
    result = coverage(path)
    elapsed = time.perf_counter() - start
    assert result.utterances > 0 and len(result.tables) == len(TAGS) + len(TAGS) * (len(TAGS) - 1) // 2
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {args.lines:,} lines")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.jsonl"
        write_manifest(path, args.lines)
        print(f"manifest: {path.stat().st_size / 1e6:.0f} MB")
        base = baseline(path)
        ours = min(timed_coverage(path) for _ in range(2))
    print(f"(a) pandas read_json + groupby (baseline): {base:6.2f} s")
    print(f"(b) asrfair coverage:                      {ours:6.2f} s (goal <= 10 s)")
    print(f"b/a = {ours / base:.2f}")


if __name__ == "__main__":
    main()
