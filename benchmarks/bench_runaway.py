"""What do the runaway rules and the capped table cost per run? On N synthetic scored utterances
(1 % of hypotheses loop, 1 % are empty), times :func:`harness.scoring.runaway.classify` and
:func:`harness.scoring.runaway.capped` against :func:`harness.scoring.align.align` on the same pairs (every run
aligns once). Measured on a loaded 2-core machine: rules 2.7 s, capped 0.02 s, align 20 s for
100,000 utterances (rules / align = 0.13: one compiled regex search per hypothesis). Usage::

    python benchmarks/bench_runaway.py [--utterances 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from harness.scoring.align import align
from harness.scoring.options import RunawayRules
from harness.scoring.runaway import capped, classify

WORDS = "the birch canoe slid on smooth planks glue sheet to dark blue background it is easy to tell".split(" ")  # noqa: SIM905


def corpus(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    refs, hyps = [], []
    for i in range(n):
        ref = [WORDS[j] for j in rng.integers(len(WORDS), size=int(rng.integers(5, 15)))]
        hyp = [w if rng.random() > 0.1 else WORDS[int(rng.integers(len(WORDS)))] for w in ref]
        if i % 100 == 0:
            hyp += ["my"] * 100
        elif i % 100 == 1:
            hyp = []
        refs.append(" ".join(ref))
        hyps.append(" ".join(hyp))
    return refs, hyps


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--utterances", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    refs, hyps = corpus(args.utterances)
    aligned = align(refs, hyps)
    t_align = best_of(1, lambda: align(refs, hyps))
    table = pd.DataFrame(
        {
            "status": "ok",
            "ref_norm": refs,
            "hyp_norm": hyps,
            "hits": aligned.hits,
            "substitutions": aligned.substitutions,
            "deletions": aligned.deletions,
            "insertions": aligned.insertions,
            "ref_words": aligned.ref_words,
            "errors": aligned.errors,
        }
    )
    hyp_words = (aligned.hits + aligned.substitutions + aligned.insertions).astype(float)
    seconds = aligned.ref_words / 2.5
    ok = np.ones(len(refs), dtype=bool)

    def rules() -> pd.Series:
        return classify(
            table["hyp_norm"], table["ref_norm"], hyp_words, aligned.ref_words.astype(float), seconds, ok,
            RunawayRules(),
        )

    t_rules = best_of(args.repeats, rules)
    t_capped = best_of(args.repeats, lambda: capped(table))
    counts = rules().value_counts().to_dict()
    print(f"{args.utterances} utterances: align {t_align:.2f} s, rules {t_rules:.3f} s, capped {t_capped:.3f} s")
    print(f"rules / align = {t_rules / t_align:.3f}; flagged: {counts}")


if __name__ == "__main__":
    main()
