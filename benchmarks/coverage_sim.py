"""Coverage of the speaker-clustered bootstrap intervals for pooled, speaker-mean and utterance-mean WER,
against a row (utterance) bootstrap of pooled WER.

Simulates ``--datasets`` datasets of ``--speakers`` speakers each. Speaker s has an error rate
p_s = expit(logit(0.15) + 0.8 z_s), z_s ~ N(0, 1); 5-30 utterances, 5-20 reference words per utterance,
errors ~ Binomial(words, p_s).

The population targets, consistent with this simulation, all equal E[p_s] (computed by Monte Carlo with
10^7 seeded draws):

- pooled WER: E[words_s * p_s] / E[words_s] = E[p_s], since a speaker's word count is independent of p_s;
- speaker-mean WER: the expected mean over speakers of each speaker's own WER, E[errors_s / words_s] =
  E[E[errors_s / words_s | p_s, words]] = E[p_s] (binomial errors: each speaker's pooled WER is unbiased
  for p_s given their words);
- utterance-mean WER: the expected WER of a random utterance, E[utts_s * p_s] / E[utts_s] = E[p_s], since
  the number of utterances is independent of p_s and E[errors_u / words_u | p_s] = p_s.

Per dataset: (i) the harness's intervals: ``harness.stats.bootstrap.Resampler`` (speakers resampled with all their
utterances, 1000 replicates) and ``percentile_interval`` at 95%, one set of replicates shared by the three
aggregates exactly as ``harness.stats.by_slice.summarise_aggregates`` builds them (per speaker: Σ errors / Σ words
for pooled, own WER / 1 for speaker-mean, Σ utterance WER / utterances for utterance-mean); (ii) a row
bootstrap of pooled WER: utterances resampled independently (a multinomial weight matrix over utterances,
1000 replicates), same percentile interval. Prints the coverage of each with its Monte-Carlo standard
error. Usage::

    python benchmarks/coverage_sim.py [--datasets 1000] [--speakers 40] [--seed 0] [--replicates 1000]
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass

import numpy as np

from harness.stats.bootstrap import Resampler, percentile_interval

log = logging.getLogger("coverage_sim")

BASE_WER = 0.15
LOGIT_SD = 0.8
REPLICATES = 1000
CONFIDENCE = 0.95
CLUSTERED = ("pooled", "speaker-mean", "utterance-mean")  # the harness's aggregates, one interval each


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def true_wer(seed: int, draws: int = 10_000_000) -> tuple[float, float]:
    """E[p_s] by Monte Carlo, and its standard error: the population value of all three aggregates."""
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

    def per_speaker(self) -> tuple[np.ndarray, np.ndarray]:
        """(numerator, denominator) per speaker and aggregate, shape (speakers, 3), in ``CLUSTERED`` order."""
        e = np.bincount(self.speaker, self.errors, self.n_speakers)
        n = np.bincount(self.speaker, self.words, self.n_speakers)
        utt_wer = np.bincount(self.speaker, self.errors / self.words, self.n_speakers)
        utts = np.bincount(self.speaker, minlength=self.n_speakers).astype(np.float64)
        numerator = np.column_stack([e, e / n, utt_wer])
        denominator = np.column_stack([n, np.ones(self.n_speakers), utts])
        return numerator, denominator

    def estimates(self) -> np.ndarray:
        """Point values of the three aggregates, in ``CLUSTERED`` order."""
        numerator, denominator = self.per_speaker()
        return numerator.sum(axis=0) / denominator.sum(axis=0)


def simulate(rng: np.random.Generator, n_speakers: int) -> Dataset:
    p = expit(np.log(BASE_WER / (1 - BASE_WER)) + LOGIT_SD * rng.standard_normal(n_speakers))
    per_speaker = rng.integers(5, 31, n_speakers)  # 5..30 utterances
    speaker = np.repeat(np.arange(n_speakers), per_speaker)
    words = rng.integers(5, 21, speaker.size)  # 5..20 words
    errors = rng.binomial(words, p[speaker])
    return Dataset(speaker, words.astype(np.float64), errors.astype(np.float64), n_speakers)


def clustered_intervals(data: Dataset, seed: int, replicates: int = REPLICATES) -> tuple[np.ndarray, np.ndarray]:
    """The harness's intervals (lows, highs), one per aggregate in ``CLUSTERED`` order: resample speakers
    (all their utterances), one set of replicates for all three ratio estimators, percentile interval."""
    numerator, denominator = data.per_speaker()
    reps = Resampler(data.n_speakers, replicates, seed).rates(numerator, denominator)
    return percentile_interval(reps, CONFIDENCE)


def clustered_interval(data: Dataset, seed: int, replicates: int = REPLICATES) -> tuple[float, float]:
    """The harness's interval for pooled WER."""
    lows, highs = clustered_intervals(data, seed, replicates)
    return float(lows[0]), float(highs[0])


def row_interval(data: Dataset, rng: np.random.Generator, replicates: int = REPLICATES) -> tuple[float, float]:
    """Utterance (row) bootstrap: every utterance drawn independently, as a row-resampling tool would."""
    u = data.words.size
    weights = rng.multinomial(u, np.full(u, 1.0 / u), size=replicates).astype(np.float64)
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


@dataclass(frozen=True)
class Simulation:
    truth: float
    truth_se: float  # Monte-Carlo standard error of the truth
    lows: np.ndarray  # (4, datasets): the three clustered intervals, then the row bootstrap
    highs: np.ndarray
    estimates: np.ndarray  # (3, datasets): point values per aggregate

    NAMES = (*(f"speaker-clustered {a}" for a in CLUSTERED), "row bootstrap pooled")

    def coverage(self, index: int) -> float:
        return float(np.mean((self.lows[index] <= self.truth) & (self.truth <= self.highs[index])))


def simulate_coverage(
    datasets: int,
    speakers: int,
    seed: int,
    replicates: int = REPLICATES,
    truth_draws: int = 10_000_000,
    progress: bool = False,
) -> Simulation:
    start = time.perf_counter()
    truth, truth_se = true_wer(seed, truth_draws)
    if progress:
        log.info("true WER E[p_s] = %.5f (Monte-Carlo s.e. %.1e, %d draws)", truth, truth_se, truth_draws)
    data_rng = np.random.default_rng([seed, 1])
    row_rng = np.random.default_rng([seed, 2])
    lows = np.empty((4, datasets))
    highs = np.empty((4, datasets))
    estimates = np.empty((3, datasets))
    for d in range(datasets):
        data = simulate(data_rng, speakers)
        estimates[:, d] = data.estimates()
        resampler_seed = int(np.random.SeedSequence([seed, 3, d]).generate_state(1)[0])
        lows[:3, d], highs[:3, d] = clustered_intervals(data, resampler_seed, replicates)
        lows[3, d], highs[3, d] = row_interval(data, row_rng, replicates)
        if progress and (d + 1) % max(1, datasets // 10) == 0:
            log.info("%d/%d datasets (%.1f s)", d + 1, datasets, time.perf_counter() - start)
    return Simulation(truth, truth_se, lows, highs, estimates)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--speakers", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replicates", type=int, default=REPLICATES)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")

    start = time.perf_counter()
    sim = simulate_coverage(args.datasets, args.speakers, args.seed, args.replicates, progress=True)
    truth = sim.truth

    results = [summary(name, sim.lows[i], sim.highs[i], truth) for i, name in enumerate(Simulation.NAMES)]
    print(
        f"coverage over {args.datasets} datasets ({args.speakers} speakers each), nominal {CONFIDENCE:.2f}, "
        f"true WER {truth:.4f} (pooled = speaker-mean = utterance-mean = E[p_s]): "
        + ", ".join(f"{name} {c:.3f} ± {se:.3f}" for name, (c, se, _) in zip(Simulation.NAMES, results, strict=True))
    )
    for _, _, detail in results:
        print(f"  {detail}")
    for a, estimates in zip(CLUSTERED, sim.estimates, strict=True):
        print(
            f"  {a} WER estimate over datasets: mean {estimates.mean():.4f} (bias {estimates.mean() - truth:+.4f}), "
            f"sd {estimates.std(ddof=1):.4f}"
        )
    print(f"  {args.replicates} replicates per interval; {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
