"""Does the Ray executor scale across workers, and what does it cost on one?

faster-whisper ``tiny.en`` (int8, greedy, one CTranslate2 thread per model) over the demo corpus,
three ways, each a fresh ``asrfair run`` (own process, empty cache), timed end to end:

  (a) baseline: the local executor, one model
  (b) ``--executor ray --workers 1``: one actor
  (c) ``--executor ray --workers 2``: two actors, one per core

Goals on a 2-core machine: c/b speed-up ≥ 1.6×; b within 1.15× of a. The times include
start-up (Ray's own included), so they are what a user waits for. The three runs' metrics must
be identical. Usage::

    python benchmarks/bench_ray.py [--clips 240]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "datasets" / "demo"


def write_inputs(folder: Path, clips: int) -> Path:
    lines = (DEMO / "manifest.jsonl").read_text(encoding="utf-8").splitlines()[:clips]
    manifest = folder / "manifest.jsonl"
    config = {
        "version": 1,
        "name": "bench-ray",
        "dataset": str(manifest),
        "audio_roots": [str(DEMO)],
        "backend": {
            "name": "faster-whisper",
            "model": "tiny.en",
            "compute_type": "int8",
            "beam_size": 1,
            "cpu_threads": 1,
        },
        "stats": {"min_speakers": 1, "min_words": 1, "bootstrap": 200, "model": "none"},
    }
    records = [json.loads(line) for line in lines]  # the manifest sits elsewhere: audio paths made absolute
    manifest.write_text("".join(json.dumps({**r, "audio": str(DEMO / r["audio"])}) + "\n" for r in records))
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def timed_run(config: Path, output: Path, *args: str) -> tuple[float, dict]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(config), "-o", str(output), "--json", *args],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"run failed ({result.returncode}): {result.stderr[-2000:]}")
    metrics = json.loads(result.stdout)
    metrics.pop("provenance")
    return seconds, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=240)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_inputs(folder, args.clips)
        local_s, local = timed_run(config, folder / "a")
        one_s, one = timed_run(config, folder / "b", "--executor", "ray", "--workers", "1")
        two_s, two = timed_run(config, folder / "c", "--executor", "ray", "--workers", "2")
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {args.clips} clips, tiny.en int8 greedy")
    print(f"(a) local executor:       {local_s:6.1f} s")
    print(f"(b) ray, 1 worker:        {one_s:6.1f} s   b/a {one_s / local_s:.2f} (goal <= 1.15)")
    print(f"(c) ray, 2 workers:       {two_s:6.1f} s   speed-up b/c {one_s / two_s:.2f}x (goal >= 1.6)")
    print(f"metrics identical: {local == one == two}; pooled WER {local['overall']['wer']:.4f}")


if __name__ == "__main__":
    main()
