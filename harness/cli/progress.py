"""Progress as plain lines, for a run whose stderr is not a terminal (CI logs, ``nohup``, pipes).

A line every ``every_pct`` percent of the utterances, or ``every_s`` seconds since the last one,
and at the end: done/total, failures, elapsed time, ETA and the running pooled WER. The WER of a
line is that of up to ``sample`` transcripts per interval (every one when fewer came back), so a
100,000-utterance run normalises a few thousand texts for its log, not a second copy of the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any


class ProgressLines:
    def __init__(
        self,
        total: int,
        normalizer: Callable[[str], str],
        write: Callable[[str], None],
        *,
        every_pct: float = 10.0,
        every_s: float = 30.0,
        sample: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._total, self._normalizer, self._write = total, normalizer, write
        self._every_pct, self._every_s, self._sample, self._clock = every_pct, every_s, sample, clock
        self._start = self._last = clock()
        self._done = self._failed = 0
        self._first: tuple[float, int] | None = None  # (time, done) at the first batch: the rate starts there
        self._errors = self._words = 0
        self._pending: list[tuple[str, str]] = []  # (reference, hypothesis) since the last line
        self._next_pct = every_pct

    def update(self, batch: Sequence[Any], transcripts: Sequence[Any]) -> None:
        """Count a finished batch (utterances and their transcripts, in order); maybe write a line."""
        ok = [(u.text, t.text) for u, t in zip(batch, transcripts, strict=True) if t.status == "ok"]
        self._done += len(batch)
        self._failed += len(batch) - len(ok)
        self._pending.extend(ok)
        now = self._clock()
        if self._first is None:  # the cache's hits come first, all at once: no measure of speed
            self._first = (now, self._done)
        percent = 100.0 * self._done / self._total if self._total else 100.0
        if percent >= self._next_pct or now - self._last >= self._every_s or self._done >= self._total:
            self._write(self._line(now, percent))
            self._last = now
            self._next_pct = (math.floor(percent / self._every_pct) + 1) * self._every_pct

    def _line(self, now: float, percent: float) -> str:
        self._score_pending()
        elapsed = now - self._start
        wer = f"WER {self._errors / self._words:.1%}" if self._words else "WER -"
        return (
            f"transcribing: {self._done}/{self._total} ({percent:.0f}%), {self._failed} failed, {wer}, "
            f"elapsed {_clock_text(elapsed)}, ETA {self._eta(now)}"
        )

    def _eta(self, now: float) -> str:
        """Time left at the speed since the first batch (unknown before a second one)."""
        if self._done >= self._total:
            return "0s"
        since, done_then = self._first or (now, self._done)
        if now <= since or self._done <= done_then:
            return "unknown"
        return _clock_text((self._total - self._done) * (now - since) / (self._done - done_then))

    def _score_pending(self) -> None:
        from harness.scoring.align import align

        pairs = self._pending
        if len(pairs) > self._sample:  # evenly spaced: early and late batches alike
            step = len(pairs) / self._sample
            pairs = [pairs[int(i * step)] for i in range(self._sample)]
        self._pending = []
        if pairs:
            counts = align([self._normalizer(r) for r, _ in pairs], [self._normalizer(h) for _, h in pairs])
            self._errors += int(counts.errors.sum())
            self._words += int(counts.ref_words.sum())


def _clock_text(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
