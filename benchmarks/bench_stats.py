"""How fast is the statistics layer, and how does it compare with fairlearn's ``MetricFrame``?

  (a) ``summarise`` on a large synthetic run: 1,000,000 utterances of 2,000 speakers, 4 speaker-level
      tags (accent 12 values, dialect 20, device 4, region 6), specs = the 4 single dimensions plus the
      6 two-way intersections, bootstrap = 1000 and permutations = 1000. Prints the wall time
      (goal <= 10 s), its CPU time and the load average (the wall time on a shared machine depends on
      the load), and the peak RSS (goal <= 2 GiB).
  (b) On 100,000 utterances of the same generator: per-group pooled WER with a 95% bootstrap interval
      for one dimension and for all 4, by ``summarise`` and by fairlearn ``MetricFrame(n_boot=1000)``
      (one MetricFrame per dimension). Checks that the point estimates agree and prints
      fairlearn_time / asrfair_time (goal >= 20x). fairlearn resamples utterances (rows); asrfair
      resamples speakers, so the two intervals are not the same quantity.

The table is built directly from the generator (no jiwer): speaker random effects on the error rate
(logit-normal), 5-25 words per utterance, errors ~ Binomial(words, p_speaker). fairlearn costs about
0.6 s per bootstrap replicate per dimension at 100,000 utterances, so n_boot=1000 on 4 dimensions takes ~40 min
on 2 cores; ``--fairlearn-boot 100`` times fewer replicates and extrapolates linearly (the output says so). Usage::

    python benchmarks/bench_stats.py [--utterances 1000000] [--speakers 2000] [--replicates 1000]
                                     [--skip-fairlearn] [--fairlearn-utterances 100000] [--fairlearn-boot 1000]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import logging
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from harness.stats.by_slice import StatsOptions, summarise
from harness.stats.records import Summary
from harness.stats.slices import SliceSpec

log = logging.getLogger("bench_stats")

TAGS: dict[str, int] = {"accent": 12, "dialect": 20, "device": 4, "region": 6}
GiB = 1024**3


def synthetic_table(utterances: int, speakers: int, seed: int = 0) -> pd.DataFrame:
    """One row per utterance, the columns ``summarise`` reads (see harness.stats.by_slice), all status ok."""
    rng = np.random.default_rng(seed)
    # Speaker-level tags, and a logit-normal error rate with a modest effect of accent and device.
    tag_codes = {tag: rng.integers(0, k, speakers) for tag, k in TAGS.items()}
    accent_effect = rng.normal(0.0, 0.3, TAGS["accent"])
    device_effect = rng.normal(0.0, 0.2, TAGS["device"])
    logit = (
        np.log(0.15 / 0.85)
        + accent_effect[tag_codes["accent"]]
        + device_effect[tag_codes["device"]]
        + rng.normal(0.0, 0.8, speakers)
    )
    p_speaker = 1.0 / (1.0 + np.exp(-logit))

    speaker = rng.integers(0, speakers, utterances)
    speaker[:speakers] = np.arange(speakers)  # every speaker has at least one utterance
    words = rng.integers(5, 26, utterances)  # 5..25 inclusive
    errors = rng.binomial(words, p_speaker[speaker])
    # Split each utterance's errors into S/D/I (about 60/25/15%); S + D <= errors <= words keeps hits >= 0.
    substitutions = rng.binomial(errors, 0.6)
    deletions = rng.binomial(errors - substitutions, 0.25 / 0.40)
    insertions = errors - substitutions - deletions
    hits = words - substitutions - deletions

    speaker_names = np.array([f"spk{i:05d}" for i in range(speakers)], dtype=object)
    frame = pd.DataFrame(
        {
            "id": pd.Series(np.arange(utterances)).map("utt{:07d}".format).astype(object),
            "speaker": speaker_names[speaker],
            "status": "ok",
            "wer": errors / words,
            "hits": hits.astype(np.int64),
            "substitutions": substitutions.astype(np.int64),
            "deletions": deletions.astype(np.int64),
            "insertions": insertions.astype(np.int64),
            "ref_words": words.astype(np.int64),
            "errors": errors.astype(np.int64),
        }
    )
    for tag, k in TAGS.items():
        names = np.array([f"{tag}{v:02d}" for v in range(k)], dtype=object)
        frame[tag] = names[tag_codes[tag][speaker]]
    return frame


def single_specs() -> list[SliceSpec]:
    return [SliceSpec(by=tag) for tag in TAGS]


def all_specs() -> list[SliceSpec]:
    return single_specs() + [SliceSpec(by=list(pair)) for pair in itertools.combinations(TAGS, 2)]


def options(replicates: int, permutations: int) -> StatsOptions:
    return StatsOptions(
        min_speakers=5, min_words=200, bootstrap=replicates, confidence=0.95, seed=0, permutations=permutations
    )


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (Linux >= 4.0); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _vm_hwm() -> int | None:
    """Peak RSS in bytes since the last reset (VmHWM), or None off Linux."""
    return _proc_status_bytes("VmHWM:")


def _ru_maxrss() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _rss() -> int | None:
    return _proc_status_bytes("VmRSS:")


def _proc_status_bytes(field: str) -> int | None:
    """A kB field of /proc/self/status in bytes, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def bench_summarise(args: argparse.Namespace) -> None:
    log.info("building %s utterances of %s speakers", f"{args.utterances:,}", f"{args.speakers:,}")
    start = time.perf_counter()
    table = synthetic_table(args.utterances, args.speakers, seed=0)
    specs = all_specs()
    log.info("built in %.1f s; %d specs", time.perf_counter() - start, len(specs))
    gc.collect()
    before = _rss()
    reset = _reset_peak_rss()
    log.info("running summarise (bootstrap=%d, permutations=%d)", args.replicates, args.permutations)
    start, cpu_start = time.perf_counter(), time.process_time()
    summary = summarise(table, specs, options(args.replicates, args.permutations))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    load = os.getloadavg()[0]
    window_peak = _vm_hwm() if reset else None
    process_peak = _ru_maxrss()
    n_slices = sum(len(d.slices) for d in summary.dimensions)
    n_single = sum(len(d.slices) for d in summary.dimensions if len(d.by) == 1)
    log.info("summarise done: %d dimensions, %d slices", len(summary.dimensions), n_slices)
    _sanity(table, summary)

    peak_text = (
        f"peak RSS {process_peak / GiB:.2f} GiB (goal <= 2 GiB: {_met(process_peak <= 2 * GiB)}; whole process, "
        "table included)"
    )
    if window_peak is not None and before is not None:
        peak_text += (
            f"; during summarise {window_peak / GiB:.2f} GiB (table alone {before / GiB:.2f} GiB,"
            f" summarise added {(window_peak - before) / GiB:.2f} GiB)"
        )
    print(
        f"bench_stats: {args.utterances:,} utts, {args.speakers:,} speakers, {len(specs)} specs "
        f"({n_single} single slices + {n_slices - n_single} intersection slices), "
        f"bootstrap={args.replicates}, permutations={args.permutations}: "
        f"summarise {seconds:.1f} s (goal <= 10 s: {_met(seconds <= 10)}; {cpu:.1f} s of CPU, all threads, "
        f"at load average {load:.1f} on {os.cpu_count()} cores), {peak_text}"
    )


def _sanity(table: pd.DataFrame, summary: Summary) -> None:
    """Point estimates of summarise equal a plain groupby of the same counts."""
    overall = table["errors"].sum() / table["ref_words"].sum()
    assert summary.overall.wer is not None and np.isclose(summary.overall.wer, overall)
    for dim in summary.dimensions:
        if len(dim.by) != 1:
            continue
        sums = table.groupby(dim.by[0])[["errors", "ref_words"]].sum()
        expected = (sums["errors"] / sums["ref_words"]).to_dict()
        got = {s.label: s.wer for s in dim.slices}
        assert got.keys() == expected.keys(), dim.name
        assert np.allclose([got[k] for k in expected], list(expected.values())), dim.name


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def pooled_wer(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """fairlearn metric: y_true = errors, y_pred = reference words, so this is the pooled WER."""
    return float(np.sum(y_true) / np.sum(y_pred))


def bench_fairlearn(args: argparse.Namespace) -> None:
    from fairlearn import __version__ as fairlearn_version
    from fairlearn.metrics import MetricFrame

    n = args.fairlearn_utterances
    n_boot = args.fairlearn_boot
    table = synthetic_table(n, args.speakers, seed=1)
    tags = list(TAGS)

    # asrfair: one dimension, then all 4, each a full summarise with bootstrap intervals.
    asr: dict[str, float] = {}
    summaries: dict[str, Summary] = {}
    for key, specs in (("1", single_specs()[:1]), ("4", single_specs())):
        for perms in (args.permutations, 0):
            summarise(table, specs, options(args.replicates, perms))  # warm-up (imports, allocator)
            start = time.perf_counter()
            summaries[f"{key}/{perms}"] = summarise(table, specs, options(args.replicates, perms))
            asr[f"{key}/{perms}"] = time.perf_counter() - start
            log.info("asrfair %s dim(s), permutations=%d: %.2f s", key, perms, asr[f"{key}/{perms}"])

    # fairlearn: one MetricFrame per dimension (each MetricFrame would intersect several features).
    fl: dict[str, float] = {}
    fixed: dict[str, float] = {}
    frames = {}
    for tag in tags:
        y_true, y_pred, groups = table["errors"].to_numpy(), table["ref_words"].to_numpy(), table[tag].rename(tag)
        if n_boot < 1000:  # the part of the cost that does not grow with n_boot, for the extrapolation
            start = time.perf_counter()
            MetricFrame(metrics=pooled_wer, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
            fixed[tag] = time.perf_counter() - start
        log.info("fairlearn MetricFrame(n_boot=%d) on %s (%s utterances) ...", n_boot, tag, f"{n:,}")
        start = time.perf_counter()
        frames[tag] = MetricFrame(
            metrics=pooled_wer,
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=groups,
            n_boot=n_boot,
            ci_quantiles=[0.025, 0.975],
            random_state=0,
        )
        fl[tag] = time.perf_counter() - start
        log.info("fairlearn %s: %.1f s (without bootstrap: %s s)", tag, fl[tag], _fmt(fixed.get(tag)))

    # Point estimates must agree exactly (same counts, same pooled formula).
    ours = summaries[f"4/{args.permutations}"]
    widths_ours, widths_fl = [], []
    for dim in ours.dimensions:
        tag = dim.by[0]
        by_group = frames[tag].by_group
        low, high = frames[tag].by_group_ci
        labels = [s.label for s in dim.slices]
        assert sorted(labels) == sorted(map(str, by_group.index)), tag
        ours_wer = np.array([s.wer for s in dim.slices], dtype=float)
        theirs = by_group.loc[labels].to_numpy(dtype=float)
        assert np.allclose(ours_wer, theirs, rtol=1e-12, atol=0), f"point estimates differ on {tag}"
        widths_ours += [s.wer_ci[1] - s.wer_ci[0] for s in dim.slices]  # type: ignore[index,operator]
        widths_fl += list((high.loc[labels] - low.loc[labels]).to_numpy(dtype=float))

    # Cost is fixed + n_boot x per-replicate; with n_boot < 1000 extrapolate that line (measured fixed part).
    estimate = {tag: fixed.get(tag, 0.0) + (fl[tag] - fixed.get(tag, 0.0)) * 1000 / n_boot for tag in tags}
    fl_one, fl_all = estimate[tags[0]], sum(estimate.values())
    scaled = (
        ""
        if n_boot == 1000
        else f" [fairlearn NOT run at n_boot=1000: timed at n_boot={n_boot} ({sum(fl.values()):.1f} s for 4 dims) and "
        f"scaled linearly to 1000 as fixed + (t_{n_boot} - fixed) x {1000 / n_boot:g}, fixed = the same MetricFrame "
        f"without bootstrap ({sum(fixed.values()):.1f} s for 4 dims)]"
    )
    p = args.permutations
    for key, fl_time, what in (("1", fl_one, f"1 dim ({tags[0]})"), ("4", fl_all, "4 dims")):
        ratio, ratio_bare = fl_time / asr[f"{key}/{p}"], fl_time / asr[f"{key}/0"]
        print(
            f"vs fairlearn {fairlearn_version} MetricFrame(n_boot=1000), {n:,} utts, {what}: "
            f"fairlearn {fl_time:.1f} s, asrfair {asr[f'{key}/{p}']:.2f} s "
            f"(bootstrap={args.replicates} + permutation test {p}), "
            f"ratio {ratio:.1f}x (goal >= 20x: {_met(ratio >= 20)}); "
            f"asrfair without the permutation test {asr[f'{key}/0']:.2f} s, ratio {ratio_bare:.1f}x; "
            f"point estimates equal{scaled}"
        )
    print(
        "note: fairlearn's bootstrap resamples rows (utterances); asrfair's resamples speakers with all their "
        f"utterances ({args.speakers:,} speakers here), so the intervals differ by design: median 95% CI width "
        f"asrfair {np.median(widths_ours):.4f} vs fairlearn {np.median(widths_fl):.4f} "
        f"(x{np.median(widths_ours) / np.median(widths_fl):.1f})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=1_000_000, help="utterances for part (a)")
    parser.add_argument("--speakers", type=int, default=2000)
    parser.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates for asrfair")
    parser.add_argument("--permutations", type=int, default=1000, help="permutations for asrfair's test")
    parser.add_argument("--skip-fairlearn", action="store_true", help="only part (a)")
    parser.add_argument("--skip-summarise", action="store_true", help="only part (b)")
    parser.add_argument("--fairlearn-utterances", type=int, default=100_000)
    parser.add_argument(
        "--fairlearn-boot",
        type=int,
        default=1000,
        help="n_boot for fairlearn; below 1000 its time is scaled linearly to 1000 (and the output says so)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    log.info(
        "python %s, numpy %s, pandas %s, %s",
        platform.python_version(),
        np.__version__,
        pd.__version__,
        platform.platform(),
    )
    if not args.skip_summarise:
        bench_summarise(args)
    if not args.skip_fairlearn:
        bench_fairlearn(args)


if __name__ == "__main__":
    main()
