"""Throughput of a run: RTFx (audio seconds per second of transcription) and, for remote
backends, per-request latency percentiles.

Each transcript records the seconds its backend spent on it (a batched local backend splits the
batch's time evenly over its clips, so the sum is the batch time); the cache keeps that figure.
A run's metrics count only what it transcribed itself (``cached: false``): a run served from the
cache did no work to time. A study counts every transcript with its recorded time, so a rerun
from the cache reports the throughput measured when the transcripts were made.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Throughput:
    transcripts: int  # ok transcripts with a known clip length and a recorded time
    audio_s: float
    processing_s: float
    rtfx: float | None  # audio_s / processing_s; None when nothing was timed (cache only, or a stub)
    latency_s: dict[str, float] | None = None  # p50/p90/p99 per request, remote backends only
    counted: str = "transcribed"  # "transcribed" (cache hits excluded) or "recorded" (every transcript)


def throughput(
    transcripts: Mapping[str, Any], audio_s: Mapping[str, float | None], *, remote: bool, include_cached: bool = False
) -> Throughput:
    """From a run's transcripts.parquet columns (``id``, ``status``, ``latency_s``, ``cached``: a
    DataFrame or a mapping of sequences) and each utterance id's clip seconds."""
    import numpy as np  # here: a saved run's report reads Throughput without numpy

    keep = np.asarray(transcripts["status"], dtype=object) == "ok"
    if not include_cached and "cached" in transcripts:
        keep &= ~np.asarray(transcripts["cached"], dtype=bool)
    ids = np.asarray(transcripts["id"], dtype=object)[keep]
    seconds = np.array([audio_s.get(i) for i in ids], dtype=np.float64)  # None (unknown) reads as NaN
    latency = np.asarray(transcripts["latency_s"], dtype=np.float64)[keep]
    known = np.isfinite(seconds) & np.isfinite(latency)
    audio, spent = float(seconds[known].sum()), float(latency[known].sum())
    percentiles = None
    if remote and known.any():
        values = np.percentile(latency[known], PERCENTILES)
        percentiles = {f"p{p}": float(v) for p, v in zip(PERCENTILES, values, strict=True)}
    return Throughput(
        transcripts=int(known.sum()),
        audio_s=audio,
        processing_s=spent,
        rtfx=audio / spent if spent > 0 else None,
        latency_s=percentiles,
        counted="recorded" if include_cached else "transcribed",
    )


def clip_seconds_by_id(ids: Iterable[str], seconds: Iterable[float | None]) -> dict[str, float | None]:
    """Each utterance id's clip seconds, its first row's (a run with conditions has one row per condition)."""
    found: dict[str, float | None] = {}
    for utterance, value in zip(ids, seconds, strict=True):
        found.setdefault(utterance, value)
    return found


def is_remote(backend: object) -> bool:
    """Whether ``backend`` is a network backend (its module is imported whenever one is in use)."""
    remote = sys.modules.get("harness.backends.remote")
    return remote is not None and isinstance(backend, remote.RemoteBackend)
