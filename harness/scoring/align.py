"""Word alignment: per-utterance hits, substitutions, deletions, insertions and reference length.

One ``jiwer.process_words`` call aligns every pair (its per-call overhead would dominate a
per-utterance loop); the per-utterance counts are read off its alignment chunks, so every
slice figure can be pooled exactly from them.

Empty-reference rule: when a reference is empty after normalisation (a clip of "uh", or only
a tag), the utterance has N = 0 and every hypothesis word is an insertion. It is kept, adds
its insertions to its slice's errors, and its own WER is undefined (NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version

import jiwer
import numpy as np

SCORER_VERSION = "1"  # our alignment rules (the empty-reference rule above); jiwer's own version beside it
JIWER_VERSION = version("jiwer")


@dataclass(frozen=True)
class Counts:
    """Per-utterance error counts, one array element per aligned pair."""

    hits: np.ndarray
    substitutions: np.ndarray
    deletions: np.ndarray
    insertions: np.ndarray

    @property
    def ref_words(self) -> np.ndarray:
        return self.hits + self.substitutions + self.deletions

    @property
    def errors(self) -> np.ndarray:
        return self.substitutions + self.deletions + self.insertions


def align(references: Sequence[str], hypotheses: Sequence[str]) -> Counts:
    """Align normalised reference/hypothesis pairs and count errors per pair."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    size = len(references)
    hits, subs, dels, ins = (np.zeros(size, dtype=np.int64) for _ in range(4))
    scored = [i for i, ref in enumerate(references) if ref.split()]
    for i in set(range(size)).difference(scored):
        ins[i] = len(hypotheses[i].split())
    if scored:
        output = jiwer.process_words([references[i] for i in scored], [hypotheses[i] for i in scored])
        for i, chunks in zip(scored, output.alignments, strict=True):
            for chunk in chunks:
                ref_span = chunk.ref_end_idx - chunk.ref_start_idx
                if chunk.type == "equal":
                    hits[i] += ref_span
                elif chunk.type == "substitute":
                    subs[i] += ref_span
                elif chunk.type == "delete":
                    dels[i] += ref_span
                else:
                    ins[i] += chunk.hyp_end_idx - chunk.hyp_start_idx
    return Counts(hits, subs, dels, ins)
