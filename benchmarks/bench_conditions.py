"""What does rendering a listening condition cost next to transcribing the clip? Same demo clips:

  baseline: faster-whisper tiny.en (int8, beam 1) transcription time per audio second, through
            the harness backend, model loading excluded
  each condition of the example chain, rendered by ``Simulator.render`` over the same clips:
  decoding the clip is excluded (samples are pre-loaded, as the runner has them already), while
  babble includes decoding its talker clips from the whole manifest (a fresh simulator: cold)

Prints each condition's milliseconds per audio second and its ratio to the backend's
(goal <= 5 %). Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_conditions.py [--clips 40] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

from harness.backends.base import AudioRequest, Registry
from harness.conditions import Condition, Simulator
from harness.data.audio import SAMPLE_RATE, load_audio
from harness.data.manifest import Utterance, load_manifest

# The bundled tiny.en needs no hub access. None of the imports above loads huggingface_hub
# (the backend imports faster-whisper when it is created), so this is early enough.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "datasets" / "demo"
GOAL = 0.05
log = logging.getLogger("bench")

# The example chain.
CONDITIONS = [
    {
        "name": "ward-hum",
        "transforms": [
            {"type": "tone", "freq_hz": 1000, "snr_db": 10},
            {"type": "noise", "color": "pink", "snr_db": 20},
        ],
    },
    {"name": "phone", "transforms": [{"type": "telephone"}]},
    {
        "name": "cheap-mic",
        "transforms": [{"type": "bandpass", "low_hz": 200, "high_hz": 6000}, {"type": "clip", "percentile": 98}],
    },
    {"name": "hall", "transforms": [{"type": "reverb", "rt60_s": 0.8}]},
    {"name": "babble", "transforms": [{"type": "babble", "talkers": 4, "snr_db": 5}]},
    {"name": "mp3-32k", "transforms": [{"type": "codec", "format": "mp3", "bitrate_kbps": 32}]},
    {"name": "opus-16k", "transforms": [{"type": "codec", "format": "opus", "bitrate_kbps": 16}]},
]


def pick_clips(utterances: list[Utterance], count: int) -> list[Utterance]:
    """The first clips of each dialect in turn, so every accent is in the sample."""
    by_dialect: dict[str, list[Utterance]] = {}
    for utt in utterances:
        by_dialect.setdefault(utt.tags.get("dialect", ""), []).append(utt)
    return [u for group in zip(*by_dialect.values(), strict=False) for u in group][:count]


def backend_seconds(clips: list[tuple[Utterance, np.ndarray]], threads: int) -> float:
    backend = Registry.default().create(
        "faster-whisper",
        {"model": "tiny.en", "compute_type": "int8", "beam_size": 1, "device": "cpu", "cpu_threads": threads},
    )
    try:
        requests = [AudioRequest(utt, samples, SAMPLE_RATE) for utt, samples in clips]
        backend.transcribe(requests[:1])  # first-call costs
        start = time.perf_counter()
        transcripts = backend.transcribe(requests)
        elapsed = time.perf_counter() - start
    finally:
        backend.close()
    failed = [t.id for t in transcripts if t.status != "ok"]
    if failed:
        raise SystemExit(f"the backend failed on {len(failed)} clips, e.g. {failed[0]}")
    return elapsed


def render_seconds(
    condition: Condition, pool: list[Utterance], clips: list[tuple[Utterance, np.ndarray]], seed: int
) -> float:
    """Rendering every clip with a fresh simulator (nothing decoded yet)."""
    simulator = Simulator(pool, seed=seed, sample_rate=SAMPLE_RATE)
    start = time.perf_counter()
    for utt, samples in clips:
        simulator.render(condition, utt, samples, SAMPLE_RATE)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 cpu_threads for the backend")
    parser.add_argument("--repeats", type=int, default=3, help="condition timings keep the fastest of this many")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    pool = list(load_manifest(DEMO / "manifest.jsonl").utterances)
    clips = [(utt, load_audio(utt, SAMPLE_RATE)) for utt in pick_clips(pool, args.clips)]
    audio_s = sum(samples.size for _, samples in clips) / SAMPLE_RATE
    conditions = [Condition.model_validate(c) for c in CONDITIONS]

    warm = Simulator(pool, seed=args.seed + 1, sample_rate=SAMPLE_RATE)
    for condition in conditions:  # imports (audiomentations, codecs) and first-call costs
        warm.render(condition, *clips[0], SAMPLE_RATE)
    timings = {c.name: min(render_seconds(c, pool, clips, args.seed) for _ in range(args.repeats)) for c in conditions}
    base = backend_seconds(clips, args.threads)
    base_ms = 1000 * base / audio_s

    print(
        f"{platform.machine()}, {os.cpu_count()} cores; {len(clips)} demo clips, {audio_s:.0f} s of audio; "
        f"backend: faster-whisper tiny.en int8, beam 1, cpu_threads={args.threads}"
    )
    print(f"backend transcription: {base_ms:7.2f} ms per audio second (RTF {base / audio_s:.3f})")
    print()
    print(f"{'condition':<10} {'ms/audio s':>10} {'vs backend':>10}   transforms")
    for condition in conditions:
        ms = 1000 * timings[condition.name] / audio_s
        print(f"{condition.name:<10} {ms:10.2f} {ms / base_ms:10.1%}   {condition.describe()}")
    mean = sum(timings.values()) / len(timings) / base
    print(f"{'mean':<10} {mean * base_ms:10.2f} {mean:10.1%}")
    worst = max(conditions, key=lambda c: timings[c.name])
    ratio = timings[worst.name] / base
    verdict = "meets" if ratio <= GOAL else "misses"
    print()
    print(f"worst: {worst.name} at {ratio:.1%} of backend time ({verdict} the goal of <= {GOAL:.0%})")


if __name__ == "__main__":
    main()
