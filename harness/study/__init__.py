"""Multi-system fairness studies: several systems over the same datasets, compared on the same utterances."""

from typing import Literal

RankBy = Literal["wer", "worst", "gap"]  # overall WER, worst-slice WER, worst − best gap
