"""Transcripts + references → the per-utterance table every statistic is pooled from.

The table (``utterances.parquet`` in a run directory) keeps raw and normalised text side by
side, so anyone can recompute WER with jiwer from the run directory alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.data.manifest import RESULT_COLUMNS
from harness.scoring.align import align
from harness.scoring.normalisers import Normalizer
from harness.scoring.options import RunawayRules
from harness.scoring.runaway import RUNAWAY_COLUMN, classify

COUNT_COLUMNS = ("hits", "substitutions", "deletions", "insertions", "ref_words", "errors")
BASE_COLUMNS = ("id", "speaker", "language")
SCORE_COLUMNS = ("ref_norm", "hyp_norm", *COUNT_COLUMNS, "wer", RUNAWAY_COLUMN)


def tag_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in BASE_COLUMNS and c not in RESULT_COLUMNS]


def _normalised(texts: pd.Series, normalizer: Normalizer) -> pd.Series:
    """Each distinct text normalised once (prompts repeat across speakers; nulls stay null)."""
    distinct = texts.dropna().unique()
    return texts.map(dict(zip(distinct, map(normalizer, distinct), strict=True)))


def score_frame(frame: pd.DataFrame, normalizer: Normalizer, rules: RunawayRules | None = None) -> pd.DataFrame:
    """Normalise both sides and add per-utterance counts, WER and runaway reason (null for failed
    utterances; see :mod:`harness.scoring.runaway`)."""
    table = frame.drop(columns=[c for c in SCORE_COLUMNS if c in frame])
    ok = (table["status"] == "ok").to_numpy()
    table["ref_norm"] = _normalised(table["reference"], normalizer)
    table["hyp_norm"] = _normalised(table["hypothesis"], normalizer)
    counts = align(table.loc[ok, "ref_norm"].tolist(), table.loc[ok, "hyp_norm"].tolist())
    values = {
        "hits": counts.hits,
        "substitutions": counts.substitutions,
        "deletions": counts.deletions,
        "insertions": counts.insertions,
        "ref_words": counts.ref_words,
        "errors": counts.errors,
    }
    for column in COUNT_COLUMNS:
        full = pd.array([pd.NA] * len(table), dtype="Int64")
        full[ok] = values[column]
        table[column] = full
    ref_words = table["ref_words"].astype("Float64")
    table["wer"] = (table["errors"].astype("Float64") / ref_words).where(ref_words > 0, np.nan)
    seconds = table["audio_s"] if "audio_s" in table else pd.Series(np.nan, index=table.index)  # older runs: none
    hyp_words = (table["hits"] + table["substitutions"] + table["insertions"]).to_numpy(dtype=np.float64, na_value=0)
    table[RUNAWAY_COLUMN] = classify(
        table["hyp_norm"],
        table["ref_norm"],
        hyp_words,
        table["ref_words"].to_numpy(dtype=np.float64, na_value=0),
        seconds.to_numpy(dtype=np.float64, na_value=np.nan),
        ok,
        rules or RunawayRules(),
    )
    return table
