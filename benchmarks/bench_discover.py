"""How fast is ``asrfair discover`` at the size an audit meets? 100,000 utterances, 6 tags of 10
values each (3 fixed per speaker, 3 per utterance), 4,000 speakers, depth 3:

  (a) baseline: the obvious pandas way to list the same lattice, one ``groupby`` per combination of
      tags giving each subgroup's utterances, speakers and pooled WER (no variance, no test, one
      pass over all speakers)
  (b) ``harness.stats.discover.discover``: both halves, cluster-robust tests of every candidate, BH,
      confirmation, pruning and bootstrap intervals of the findings (1,000 replicates)

with a planted effect on one 3-way intersection. Prints b and b/a; goal: b <= 60 s on 2 cores.
Usage::

    python benchmarks/bench_discover.py [--utterances 100000] [--values 10]
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time

import numpy as np

from harness.stats.discover import DiscoverOptions, discover, simulate


def baseline(table, tags: list[str], depth: int) -> float:
    start = time.perf_counter()
    for size in range(1, depth + 1):
        for combo in itertools.combinations(tags, size):
            grouped = table.groupby(list(combo), observed=True)
            stats = grouped.agg(utterances=("id", "size"), speakers=("speaker", "nunique"), errors=("errors", "sum"))
            stats["wer"] = stats["errors"] / grouped["ref_words"].sum()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=100_000)
    parser.add_argument("--values", type=int, default=10)
    args = parser.parse_args()
    speakers = 4000
    tags = {name: args.values for name in ("accent", "region", "l1", "device", "noise", "mic")}
    planted = {"accent": "v1", "region": "v2", "device": "v3"}
    table = simulate(
        np.random.default_rng(0),
        speakers=speakers,
        utterances=args.utterances // speakers,
        tags=tags,
        speaker_tags=("accent", "region", "l1"),
        planted=planted,
        lift=0.3,
    )
    print(f"python {platform.python_version()} on {platform.machine()}: {len(table):,} utterances, {speakers} speakers")
    base = baseline(table, list(tags), 3)
    start = time.perf_counter()
    result = discover(table, DiscoverOptions(min_speakers=5, min_words=100, bootstrap=1000))
    ours = time.perf_counter() - start
    print(f"(a) pandas groupby per combination (baseline): {base:6.2f} s")
    print(f"(b) asrfair discover, depth 3:                 {ours:6.2f} s (goal <= 60 s)")
    print(f"b/a = {ours / base:.2f}")
    print(
        f"{result.candidates} candidates met support in the search half; {result.kept_by_search} passed BH; "
        f"{result.confirmed} confirmed; {len(result.findings)} reported; first: "
        f"{result.findings[0].label if result.findings else 'none'} (planted: accent=v1 ∧ region=v2 ∧ device=v3)"
    )


if __name__ == "__main__":
    main()
