"""The scoring's options: the runaway rules' thresholds (``runaway:`` in the config, docs/config.md).

Kept free of heavy imports, like :mod:`harness.stats.options`: the config reads them, and a saved
run's results (:mod:`harness.stats.records`) hold them, without loading numpy or pandas.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunawayRules:
    loop_ngram: int = 8
    loop_repeats: int = 4
    max_length_ratio: float = 3.0
    length_slack: int = 5
    max_words_per_second: float = 8.0
    flag_empty: bool = True
    mostly: float = 0.5  # sanity warning above this share of empty or runaway transcripts
