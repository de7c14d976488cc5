"""Coverage of the speaker-clustered bootstrap interval for pooled WER, against a row (utterance) bootstrap.

Simulates ``--datasets`` datasets of ``--speakers`` speakers each. Speaker s has an error rate
p_s = expit(logit(0.15) + 0.8 z_s), z_s ~ N(0, 1); 5-30 utterances, 5-20 reference words per utterance,
errors ~ Binomial(words, p_s). The target is the population pooled WER, E[words * p] / E[words] = E[p_s]
(words are independent of p_s), computed by Monte Carlo with 10^7 seeded draws.

Per dataset: (i) the harness's interval: ``harness.bootstrap.Resampler`` (speakers resampled with all their
utterances, 1000 replicates) and ``percentile_interval`` at 95%; (ii) a row bootstrap: utterances resampled
independently (a multinomial weight matrix over utterances, 1000 replicates), same percentile interval.
Prints the coverage of each with its Monte-Carlo standard error. Usage::

    python benchmarks/coverage_sim.py [--datasets 1000] [--speakers 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass

import numpy as np

from harness.bootstrap import Resampler, percentile_interval

log = logging.getLogger("coverage_sim")

BASE_WER = 0.15
LOGIT_SD = 0.8
REPLICATES = 1000
CONFIDENCE = 0.95


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def true_wer(seed: int, draws: int = 10_000_000) -> tuple[float, float]:
    """E[p_s] by Monte Carlo, and its standard error."""
    rng = np.random.default_rng([seed, 0xC0FFEE])
    p = expit(np.log(BASE_WER / (1 - BASE_WER)) + LOGIT_SD * rng.standard_normal(draws))
    return float(p.mean()), float(p.std(ddof=1) / np.sqrt(draws))


@dataclass(frozen=True)
class Dataset:
    speaker: np.ndarray  # speaker index per utterance
    words: np.ndarray  # reference words per utterance
    errors: np.ndarray  # errors per utterance
    n_speakers: int

    @property
    def pooled_wer(self) -> float:
        return float(self.errors.sum() / self.words.sum())


def simulate(rng: np.random.Generator, n_speakers: int) -> Dataset:
    p = expit(np.log(BASE_WER / (1 - BASE_WER)) + LOGIT_SD * rng.standard_normal(n_speakers))
    per_speaker = rng.integers(5, 31, n_speakers)  # 5..30 utterances
    speaker = np.repeat(np.arange(n_speakers), per_speaker)
    words = rng.integers(5, 21, speaker.size)  # 5..20 words
    errors = rng.binomial(words, p[speaker])
    return Dataset(speaker, words.astype(np.float64), errors.astype(np.float64), n_speakers)


def clustered_interval(data: Dataset, seed: int) -> tuple[float, float]:
    """The harness's interval: resample speakers (all their utterances), percentile interval."""
    e = np.bincount(data.speaker, data.errors, data.n_speakers)
    n = np.bincount(data.speaker, data.words, data.n_speakers)
    reps = Resampler(data.n_speakers, REPLICATES, seed).rates(e[:, None], n[:, None])
    low, high = percentile_interval(reps, CONFIDENCE)
    return float(low[0]), float(high[0])


def row_interval(data: Dataset, rng: np.random.Generator) -> tuple[float, float]:
    """Utterance (row) bootstrap: every utterance drawn independently, as a row-resampling tool would."""
    u = data.words.size
    weights = rng.multinomial(u, np.full(u, 1.0 / u), size=REPLICATES).astype(np.float64)
    reps = (weights @ data.errors) / (weights @ data.words)
    low, high = percentile_interval(reps[:, None], CONFIDENCE)
    return float(low[0]), float(high[0])


def summary(name: str, lows: np.ndarray, highs: np.ndarray, truth: float) -> tuple[float, float, str]:
    covered = (lows <= truth) & (truth <= highs)
    c = float(covered.mean())
    se = float(np.sqrt(c * (1 - c) / covered.size))
    detail = (
        f"{name}: coverage {c:.3f} ± {se:.3f}; interval entirely below the truth {np.mean(highs < truth):.3f}, "
        f"entirely above {np.mean(lows > truth):.3f}; mean width {np.mean(highs - lows):.4f}"
    )
    return c, se, detail


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--speakers", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")

    start = time.perf_counter()
    truth, truth_se = true_wer(args.seed)
    log.info("true pooled WER E[p_s] = %.5f (Monte-Carlo s.e. %.1e, 10^7 draws)", truth, truth_se)

    data_rng = np.random.default_rng([args.seed, 1])
    row_rng = np.random.default_rng([args.seed, 2])
    lows = np.empty((2, args.datasets))
    highs = np.empty((2, args.datasets))
    estimates = np.empty(args.datasets)
    for d in range(args.datasets):
        data = simulate(data_rng, args.speakers)
        estimates[d] = data.pooled_wer
        resampler_seed = int(np.random.SeedSequence([args.seed, 3, d]).generate_state(1)[0])
        (lows[0, d], highs[0, d]) = clustered_interval(data, resampler_seed)
        (lows[1, d], highs[1, d]) = row_interval(data, row_rng)
        if (d + 1) % max(1, args.datasets // 10) == 0:
            log.info("%d/%d datasets (%.1f s)", d + 1, args.datasets, time.perf_counter() - start)

    clustered = summary("speaker-clustered", lows[0], highs[0], truth)
    row = summary("row bootstrap", lows[1], highs[1], truth)
    print(
        f"coverage over {args.datasets} datasets ({args.speakers} speakers each), nominal {CONFIDENCE:.2f}, "
        f"true WER {truth:.4f}: speaker-clustered {clustered[0]:.3f} ± {clustered[1]:.3f}, "
        f"row bootstrap {row[0]:.3f} ± {row[1]:.3f}"
    )
    print(f"  {clustered[2]}")
    print(f"  {row[2]}")
    print(
        f"  pooled WER estimate over datasets: mean {estimates.mean():.4f} (bias {estimates.mean() - truth:+.4f}), "
        f"sd {estimates.std(ddof=1):.4f}; {REPLICATES} replicates per interval; "
        f"{time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
