"""The statistics' options and their defaults, in one place: the run config and the CLI read them here.

Kept free of heavy imports, so a command can show these defaults without loading numpy or pandas.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StatsOptions:
    min_speakers: int = 5
    min_words: int = 200
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    permutations: int = 1000
    aggregate: str = "pooled"  # the headline; all three are always computed
    speaker_wer_threshold: float | None = None  # badly served above this; None: 2 × overall pooled WER
    power: float = 0.8  # of the minimum detectable gap
