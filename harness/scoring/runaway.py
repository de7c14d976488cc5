"""Runaway transcripts: the per-utterance rules, and the capped table of the robust view.

A speech model can fail on one clip in a way that swamps every pooled figure: Whisper's
hallucination loops ("my, my, my, ..." for a minute), a transcript far longer than the clip
could hold, or nothing at all. Pooled WER sums errors, so one looping clip with 222 errors on 7
reference words outweighs dozens of ordinary clips and can decide which accent ranks worst.

Each scored utterance gets a ``runaway`` reason (null when none), from the first rule it meets,
in this order (thresholds under ``runaway:`` in the config, docs/config.md):

``loop``
    the normalised hypothesis repeats one n-gram of 1 to ``loop_ngram`` words back to back at
    least ``loop_repeats`` times, and the normalised reference does not;
``length``
    hypothesis words > ``max_length_ratio`` × reference words + ``length_slack``;
``rate``
    hypothesis words per second of audio > ``max_words_per_second`` (only where the clip's
    duration is known: ``duration`` in the manifest, else read from the audio file's header);
``empty``
    no hypothesis word on an utterance whose reference has words (``flag_empty``).

The robust view (never instead of the headline) scores the same utterances with each
utterance's errors capped at its reference length, ``min(S + D + I, N)``: an utterance can then
count as at most 100 % wrong, and a loop weighs no more than a clip the model missed entirely.
Capping removes insertions only (S + D ≤ N always), so the capped table is a valid count table
that every statistic of :mod:`harness.stats.by_slice` and :mod:`harness.stats.degradation` accepts as is.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from harness.scoring.options import RunawayRules

RUNAWAY_COLUMN = "runaway"
REASONS = ("loop", "length", "rate", "empty")
ROBUST = "capped"  # the robust view's name in every output


def loop_pattern(max_ngram: int, repeats: int) -> re.Pattern[str]:
    """A unit of 1..``max_ngram`` whole words followed by ``repeats - 1`` exact copies of itself,
    on text padded with one space each side (as :func:`has_loop` pads it)."""
    return re.compile(rf" ((?:\S+ ){{1,{max_ngram}}})\1{{{repeats - 1},}}")


def has_loop(texts: pd.Series, pattern: re.Pattern[str]) -> np.ndarray:
    """Whether each (normalised, single-spaced) text holds the loop ``pattern``; NaN → False."""
    # one compiled search per text: 5x faster than pandas' str.extract over the column
    found = [isinstance(t, str) and pattern.search(f" {' '.join(t.split())} ") is not None for t in texts.tolist()]
    return np.array(found, dtype=bool)


def classify(
    hyp_norm: pd.Series,
    ref_norm: pd.Series,
    hyp_words: np.ndarray,
    ref_words: np.ndarray,
    seconds: np.ndarray,
    scored: np.ndarray,
    rules: RunawayRules,
) -> pd.Series:
    """The ``runaway`` reason per row (None: not a runaway, or not scored), first rule met wins."""
    pattern = loop_pattern(rules.loop_ngram, rules.loop_repeats)
    loop = np.zeros(len(hyp_norm), dtype=bool)
    candidates = scored & (hyp_words >= rules.loop_repeats)
    if candidates.any():
        found = has_loop(hyp_norm[candidates], pattern)
        index = np.flatnonzero(candidates)[found]
        # a loop the reference holds too is speech, not a runaway ("no, no, no, no")
        loop[index[~has_loop(ref_norm.iloc[index], pattern)]] = True
    length = scored & (hyp_words > rules.max_length_ratio * ref_words + rules.length_slack)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = scored & (seconds > 0) & (hyp_words / seconds > rules.max_words_per_second)
    empty = scored & (hyp_words == 0) & (ref_words > 0) & rules.flag_empty
    reasons = np.select([loop, length, rate, empty], list(REASONS), default="")
    return pd.Series(np.where(reasons == "", None, reasons), index=hyp_norm.index, dtype=object)


def capped(table: pd.DataFrame) -> pd.DataFrame:
    """The same utterances with each one's errors capped at its reference length (fewer insertions)."""
    out = table.copy()
    words = out["ref_words"]
    errors = out["errors"].where(out["errors"] <= words, words)
    out["insertions"] = out["insertions"] - (out["errors"] - errors)
    out["errors"] = errors
    ref = words.astype("Float64")
    out["wer"] = (errors.astype("Float64") / ref).where(ref > 0, np.nan)
    return out
