"""What does the normaliser-sensitivity view cost? One finished stub run, re-scored:

  (a) baseline: ``rescore`` under one normaliser (whisper-english): normalise, align, bootstrap,
      tests, rate model, reports
  (b) ``rescore`` under whisper-english with dialect-preserving beside it (the sensitivity view)
  (c) rendering report.html alone (part of every scoring)

Prints b/a (goal <= 2.0: a second normaliser costs no more than scoring the run once more), c/a
(goal <= 0.05: the page is a small part of scoring), and each preset's throughput against
``basic`` (the named baseline: one regex pass). Usage::

    python benchmarks/bench_normalization.py [--utterances 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from harness.config import RunConfig
from harness.pipeline import prepare, rescore, run
from harness.report.html import render_html
from harness.scoring.normalisers import get_normalizer
from harness.stats.slices import SliceSpec

SENTENCES = (
    "I'm gonna see the doctor today, y'all.",
    "We want to go to the shop at twenty five past nine.",
    "They ain't gonna wait for the bus in this colour of weather.",
    "Uh, the neighbour's car cost 1,000 dollars [laughter].",
    "You're going to like this one, innit?",
    "The boy was there when the sun rose.",
)
ACCENTS = ("southern", "northern", "western", "scottish", "caribbean", "welsh")
log = logging.getLogger("bench")


def make_run(folder: Path, utterances: int) -> Path:
    sf.write(folder / "tone.wav", np.zeros(1600, dtype=np.float32), 16_000)
    speakers = 20
    records = [
        {
            "id": f"u{i}",
            "audio": "tone.wav",
            "text": SENTENCES[i % len(SENTENCES)],
            "speaker": f"{ACCENTS[i % len(ACCENTS)]}-{(i // len(ACCENTS)) % speakers}",
            "accent": ACCENTS[i % len(ACCENTS)],
            "device": ("phone", "headset", "laptop")[(i // 7) % 3],
        }
        for i in range(utterances)
    ]
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = RunConfig(
        name="bench-normalization",
        dataset=folder / "manifest.jsonl",
        backend={
            "name": "stub",
            "default_rate": 0.1,
            "rewrites": [{"when": {"accent": "southern"}, "words": {"going to": "gonna"}}],
        },
        output=folder / "runs",
    )
    return run(prepare(config)).paths.root


def timed(root: Path, normalizers: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        rescore(root, normalizers=normalizers)
        best = min(best, time.perf_counter() - start)
    return best


def timed_report(root: Path, repeats: int) -> float:
    metrics = json.loads((root / "metrics.json").read_text())
    table = pd.read_parquet(root / "utterances.parquet")
    specs = [SliceSpec.model_validate(s) for s in metrics["provenance"]["slices"]]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        render_html(metrics, table, specs, report_dir=root)
        best = min(best, time.perf_counter() - start)
    return best


def throughput(texts: list[str], name: str) -> float:
    normalizer = get_normalizer(name)
    start = time.perf_counter()
    for text in texts:
        normalizer(text)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"python {platform.python_version()} on {platform.machine()}, {args.utterances} utterances")
    with tempfile.TemporaryDirectory() as tmp:
        root = make_run(Path(tmp), args.utterances)
        one = timed(root, ["whisper-english"], args.repeats)
        page = timed_report(root, args.repeats)
        two = timed(root, ["whisper-english", "dialect-preserving"], args.repeats)
    print(f"(a) rescore, one normaliser:           {one:7.2f} s")
    print(f"(b) rescore, with the sensitivity view: {two:7.2f} s")
    print(f"(c) report.html alone:                  {page:7.3f} s")
    print(f"b/a = {two / one:.2f} (goal <= 2.0); c/a = {page / one:.3f} (goal <= 0.05)")
    texts = [SENTENCES[i % len(SENTENCES)] for i in range(args.utterances)]
    base = throughput(texts, "basic")
    print(f"basic@1 (baseline): {base:10,.0f} texts/s")
    for name in ("whisper-english", "dialect-preserving", "none"):
        rate = throughput(texts, name)
        print(f"{name + '@1':<21} {rate:10,.0f} texts/s  ({base / rate:.1f}x the baseline's time)")


if __name__ == "__main__":
    main()
