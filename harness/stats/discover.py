"""Discover under-served subgroups without fooling ourselves, and write each finding so that
anyone can re-check it.

Outside auditors and red teams look for the groups a model serves worst, often intersections
nobody listed. A search over every conjunction of tag values tests thousands of subgroups, so
chance alone finds "effects". Three guards (docs/discovery.md):

1. **Support**: a subgroup is tested only with ``min_speakers`` speakers and ``min_words``
   reference words, in each half of the data.
2. **Held-out speakers**: speakers are split at random (seeded) into a search half and a
   confirmation half. The search tests every candidate on its half and keeps those that survive
   Benjamini–Hochberg at ``fdr``; only those are tested again on the confirmation half (BH again,
   over the survivors), and every number reported is the confirmation half's.
3. **Pruning**: a confirmed subgroup is dropped when an ancestor (fewer conditions) explains it
   (it is not worse than the rest of that ancestor), or when a descendant carries its whole lift
   (the ancestor without that descendant is not worse than its complement).

The test of a subgroup is one-sided (worse than its complement): the pooled WER difference over a
speaker-clustered (linearised, cluster-robust) standard error, against Student's t with one degree
of freedom fewer than the speakers on the smaller side. Confirmed findings get intervals
from the speaker-clustered bootstrap of the confirmation half.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from harness.scoring.table import tag_columns
from harness.stats.bootstrap import Resampler, percentile_interval
from harness.stats.by_slice import cluster_units
from harness.stats.slices import MISSING, SliceSpec

JOIN = " ∧ "


@dataclass(frozen=True)
class DiscoverOptions:
    depth: int = 3
    min_speakers: int = 5
    min_words: int = 200
    fdr: float = 0.05
    alpha: float = 0.05  # of the pruning tests
    confidence: float = 0.95
    bootstrap: int = 1000
    seed: int = 0
    tags: tuple[str, ...] | None = None  # None: every tag with two or more values


@dataclass(frozen=True)
class Estimate:
    """A subgroup against its complement on one set of speakers."""

    wer: float
    complement_wer: float
    difference: float
    ratio: float | None
    z: float
    p_value: float
    speakers: int
    utterances: int
    words: int
    difference_ci: list[float | None] | None = None
    ratio_ci: list[float | None] | None = None


@dataclass(frozen=True)
class Finding:
    conditions: dict[str, str]  # tag -> value, every one must hold
    search: Estimate
    confirmation: Estimate
    search_q: float  # BH-adjusted over every candidate tested in the search half
    confirmation_q: float  # BH-adjusted over the candidates the search kept

    @property
    def label(self) -> str:
        return describe(self.conditions)

    def slice_spec(self) -> SliceSpec:
        """The subgroup as a slice definition: by its first tag, filtered to every condition."""
        tags = list(self.conditions)
        return SliceSpec(
            by=(tags[0],),
            name=self.label,
            where={tag: (value,) for tag, value in self.conditions.items()},
        )


@dataclass(frozen=True)
class Discovery:
    options: DiscoverOptions
    tags: list[str]
    candidates: int  # subgroups tested in the search half (support met)
    kept_by_search: int
    confirmed: int  # before pruning
    findings: list[Finding]  # confirmed and not redundant, worst first (confirmation difference)
    pruned: list[dict[str, str]] = field(default_factory=list)  # why each confirmed one was dropped
    search_speakers: int = 0
    confirmation_speakers: int = 0
    method: str = (
        "conjunctions of tag values; one-sided cluster-robust z-test of pooled WER against the complement; "
        "Benjamini-Hochberg on a random half of the speakers, confirmed (BH again) on the other half; "
        "redundant subgroups pruned; intervals from the confirmation half's speaker-clustered bootstrap"
    )


def describe(conditions: dict[str, str]) -> str:
    return JOIN.join(f"{tag}={value}" for tag, value in conditions.items())


# ---------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class _DiscoveryRows:
    """Scored rows: integer codes per tag, speaker clusters, errors and words."""

    codes: dict[str, np.ndarray]  # per tag: value code per row (-1: missing)
    values: dict[str, list[str]]
    speaker: np.ndarray
    n_speakers: int
    errors: np.ndarray
    words: np.ndarray

    def subset(self, keep: np.ndarray) -> _DiscoveryRows:
        speakers, speaker = np.unique(self.speaker[keep], return_inverse=True)
        return _DiscoveryRows(
            {t: c[keep] for t, c in self.codes.items()},
            self.values,
            speaker,
            len(speakers),
            self.errors[keep],
            self.words[keep],
        )


def _rows(table: pd.DataFrame, tags: Sequence[str]) -> _DiscoveryRows:
    ok = (table["status"] == "ok").to_numpy()
    scored = table[ok]
    codes, values = {}, {}
    for tag in tags:
        code, uniques = pd.factorize(scored[tag].astype("object"), use_na_sentinel=True)
        keep = [i for i, u in enumerate(uniques) if str(u) != MISSING]
        remap = np.full(len(uniques) + 1, -1)
        remap[keep] = np.arange(len(keep))
        codes[tag] = remap[np.asarray(code, dtype=np.int64)]  # code -1 reads the last entry: -1
        values[tag] = [str(uniques[i]) for i in keep]
    speaker, uniques = pd.factorize(cluster_units(scored))
    return _DiscoveryRows(
        codes,
        values,
        np.asarray(speaker, dtype=np.int64),
        len(uniques),
        scored["errors"].to_numpy(dtype=float, na_value=0.0),
        scored["ref_words"].to_numpy(dtype=float, na_value=0.0),
    )


def discovery_tags(table: pd.DataFrame, wanted: Sequence[str] | None) -> list[str]:
    tags = [t for t in tag_columns(table) if table[t].nunique(dropna=True) > 1]
    return [t for t in wanted if t in tags] if wanted else tags


# ---------------------------------------------------------------------------------------------- search


@dataclass(frozen=True)
class _Tested:
    """Every candidate of one half, vectorised: conditions and estimates as parallel arrays."""

    conditions: list[tuple[tuple[str, int], ...]]
    wer: np.ndarray
    complement: np.ndarray
    z: np.ndarray
    p: np.ndarray
    speakers: np.ndarray
    utterances: np.ndarray
    words: np.ndarray


def _test_all(rows: _DiscoveryRows, tags: Sequence[str], depth: int, min_speakers: int, min_words: int) -> _Tested:
    """Every conjunction of up to ``depth`` distinct tags' values meeting the support thresholds."""
    speaker_errors = np.bincount(rows.speaker, weights=rows.errors, minlength=rows.n_speakers)
    speaker_words = np.bincount(rows.speaker, weights=rows.words, minlength=rows.n_speakers)
    total_e, total_n = speaker_errors.sum(), speaker_words.sum()
    # Σ over speakers of (E_s - R N_s)² = A - 2 R B + R² C, for any rate R.
    moments = ((speaker_errors**2).sum(), (speaker_errors * speaker_words).sum(), (speaker_words**2).sum())
    totals = _Totals(speaker_errors, speaker_words, total_e, total_n, moments, int((speaker_words > 0).sum()))
    parts = [
        _combination(rows, combo, totals, min_speakers, min_words)
        for size in range(1, depth + 1)
        for combo in itertools.combinations(tags, size)
    ]
    conditions = [c for part in parts for c in part["conditions"]]
    stack = {key: np.concatenate([part[key] for part in parts]) if parts else np.empty(0) for key in _ARRAYS}
    return _Tested(conditions, **stack)


_ARRAYS = ("wer", "complement", "z", "p", "speakers", "utterances", "words")


@dataclass(frozen=True)
class _Totals:
    """Per-speaker sums over every row of the half, shared by every candidate."""

    errors: np.ndarray
    words: np.ndarray
    total_errors: float
    total_words: float
    moments: tuple[float, float, float]  # Σ E_s², Σ E_s N_s, Σ N_s²
    speakers: int  # speakers with reference words


def _combination(
    rows: _DiscoveryRows, combo: tuple[str, ...], totals: _Totals, min_speakers: int, min_words: int
) -> dict[str, Any]:
    """Every subgroup of one combination of tags at once: one value per tag."""
    speaker_errors, speaker_words = totals.errors, totals.words
    total_e, total_n, moments = totals.total_errors, totals.total_words, totals.moments
    sizes = [len(rows.values[t]) for t in combo]
    group = np.zeros(len(rows.errors), dtype=np.int64)
    present = np.ones(len(rows.errors), dtype=bool)
    for tag, size in zip(combo, sizes, strict=True):
        code = rows.codes[tag]
        present &= code >= 0
        group = group * size + np.maximum(code, 0)
    group, speaker = group[present], rows.speaker[present]
    groups, group_index = np.unique(group, return_inverse=True)
    pair_ids, pair_index = np.unique(group_index * rows.n_speakers + speaker, return_inverse=True)
    pair_group, pair_speaker = pair_ids // rows.n_speakers, pair_ids % rows.n_speakers
    e_gs = np.bincount(pair_index, weights=rows.errors[present])
    n_gs = np.bincount(pair_index, weights=rows.words[present])
    k = len(groups)
    e_g = np.bincount(pair_group, weights=e_gs, minlength=k)
    n_g = np.bincount(pair_group, weights=n_gs, minlength=k)
    spk = np.bincount(pair_group, weights=(n_gs > 0).astype(float), minlength=k).astype(np.int64)
    # Speakers with words outside g: all who have words, less those whose every word is in g.
    whole = (n_gs > 0) & (speaker_words[pair_speaker] - n_gs <= 0)
    complement_speakers = totals.speakers - np.bincount(pair_group, weights=whole.astype(float), minlength=k)
    utt = np.bincount(group_index, minlength=k)
    keep = (spk >= min_speakers) & (n_g >= min_words) & (total_n - n_g > 0)
    e_c, n_c = total_e - e_g, total_n - n_g
    with np.errstate(divide="ignore", invalid="ignore"):
        r_g, r_c = e_g / n_g, e_c / n_c
        # Cluster-robust variance of r_g - r_c: Σ_s (z_gs - z_cs)², with z_gs = (E_gs - r_g N_gs)/N_g
        # and z_cs = (E_cs - r_c N_cs)/N_c, where E_cs = E_s - E_gs (the speaker's rows outside g).
        e_cs = speaker_errors[pair_speaker] - e_gs
        n_cs = speaker_words[pair_speaker] - n_gs
        z_g = (e_gs - r_g[pair_group] * n_gs) / n_g[pair_group]
        z_c_in = (e_cs - r_c[pair_group] * n_cs) / n_c[pair_group]
        inside = np.bincount(pair_group, weights=(z_g - z_c_in) ** 2, minlength=k)
        # Speakers with no row in g: their whole sums are complement rows.
        a, b, c = moments
        all_c = (a - 2 * r_c * b + r_c**2 * c) / n_c**2
        own = (speaker_errors[pair_speaker] - r_c[pair_group] * speaker_words[pair_speaker]) / n_c[pair_group]
        outside = all_c - np.bincount(pair_group, weights=own**2, minlength=k)
        n = totals.speakers
        variance = (inside + np.maximum(outside, 0.0)) * n / max(n - 1, 1)
        z = (r_g - r_c) / np.sqrt(variance)
    z = np.where(np.isfinite(z), z, np.where(r_g > r_c, np.inf, 0.0))
    # One speaker on a side has no spread of its own to measure: its variance would read as 0.
    z = np.where((spk < 2) | (complement_speakers < 2), 0.0, z)
    p = _one_sided_p(z, np.minimum(spk, complement_speakers))
    conditions = []
    for code in groups[keep]:
        parts, rest = [], int(code)
        for size in reversed(sizes):
            rest, index = divmod(rest, size)
            parts.append(index)
        conditions.append(tuple(zip(combo, reversed(parts), strict=True)))
    return {
        "conditions": conditions,
        "wer": r_g[keep],
        "complement": r_c[keep],
        "z": z[keep],
        "p": p[keep],
        "speakers": spk[keep],
        "utterances": utt[keep],
        "words": n_g[keep],
    }


# ---------------------------------------------------------------------------------------------- one subgroup


def _one_sided_p(z: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """P(T > z) with Student's t on (speakers on the smaller side - 1) degrees of freedom: a
    cluster-robust standard error from few speakers is itself uncertain, and the normal curve
    would make small subgroups look significant far too often."""
    from scipy.stats import t as student_t  # deferred: scipy.stats costs ~0.5 s to import; most runs never discover

    return student_t.sf(z, df=np.maximum(speakers - 1, 1))


def _bh(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values."""
    from scipy.stats import false_discovery_control  # deferred: see _one_sided_p

    return false_discovery_control(p_values, method="bh")


def _mask(rows: _DiscoveryRows, conditions: tuple[tuple[str, int], ...]) -> np.ndarray:
    mask = np.ones(len(rows.errors), dtype=bool)
    for tag, code in conditions:
        mask &= rows.codes[tag] == code
    return mask


def _estimate(rows: _DiscoveryRows, inside: np.ndarray, against: np.ndarray) -> Estimate:
    """Rows ``inside`` against rows ``against`` (disjoint): pooled WERs and the one-sided
    cluster-robust z-test of the difference."""
    e = np.bincount(rows.speaker, weights=np.where(inside, rows.errors, 0.0), minlength=rows.n_speakers)
    n = np.bincount(rows.speaker, weights=np.where(inside, rows.words, 0.0), minlength=rows.n_speakers)
    ec = np.bincount(rows.speaker, weights=np.where(against, rows.errors, 0.0), minlength=rows.n_speakers)
    nc = np.bincount(rows.speaker, weights=np.where(against, rows.words, 0.0), minlength=rows.n_speakers)
    n_g, n_c = n.sum(), nc.sum()
    r_g = e.sum() / n_g if n_g else math.nan
    r_c = ec.sum() / n_c if n_c else math.nan
    clusters = int(((n > 0) | (nc > 0)).sum())
    variance = (((e - r_g * n) / n_g - (ec - r_c * nc) / n_c) ** 2).sum() * clusters / max(clusters - 1, 1)
    difference = r_g - r_c
    z = difference / math.sqrt(variance) if variance > 0 else (math.inf if difference > 0 else 0.0)
    if (n > 0).sum() < 2 or (nc > 0).sum() < 2:  # one speaker on a side: no spread to measure
        z = 0.0
    p = float(_one_sided_p(np.array([z]), np.array([min((n > 0).sum(), (nc > 0).sum())]))[0])
    return Estimate(
        wer=float(r_g),
        complement_wer=float(r_c),
        difference=float(difference),
        ratio=float(r_g / r_c) if r_c else None,
        z=float(z),
        p_value=p,
        speakers=int((n > 0).sum()),
        utterances=int(inside.sum()),
        words=int(n_g),
    )


def _with_intervals(rows: _DiscoveryRows, inside: np.ndarray, estimate: Estimate, options: DiscoverOptions) -> Estimate:
    """Speaker-clustered bootstrap intervals of the difference and the ratio."""
    if options.bootstrap < 2:
        return estimate
    columns = np.stack([inside, ~inside], axis=1).astype(float)
    errors = sparse.csr_matrix(
        np.stack(
            [np.bincount(rows.speaker, weights=rows.errors * col, minlength=rows.n_speakers) for col in columns.T], 1
        )
    )
    words = sparse.csr_matrix(
        np.stack(
            [np.bincount(rows.speaker, weights=rows.words * col, minlength=rows.n_speakers) for col in columns.T], 1
        )
    )
    reps = Resampler(rows.n_speakers, options.bootstrap, options.seed).rates(errors, words)
    with np.errstate(divide="ignore", invalid="ignore"):
        derived = np.stack([reps[:, 0] - reps[:, 1], reps[:, 0] / reps[:, 1]], axis=1)
    low, high = percentile_interval(derived, options.confidence)

    def finite(v: float) -> float | None:
        return float(v) if np.isfinite(v) else None

    return Estimate(
        **{
            **estimate.__dict__,
            "difference_ci": [finite(low[0]), finite(high[0])],
            "ratio_ci": [finite(low[1]), finite(high[1])],
        }
    )


# ---------------------------------------------------------------------------------------------- the whole


def discover(table: pd.DataFrame, options: DiscoverOptions) -> Discovery:
    tags = discovery_tags(table, options.tags)
    rows = _rows(table, tags)
    rng = np.random.default_rng(options.seed)
    in_search = rng.permutation(rows.n_speakers) < (rows.n_speakers + 1) // 2
    search, confirm = rows.subset(in_search[rows.speaker]), rows.subset(~in_search[rows.speaker])
    tested = _test_all(search, tags, options.depth, options.min_speakers, options.min_words)
    if not len(tested.p):
        return Discovery(options, tags, 0, 0, 0, [], [], search.n_speakers, confirm.n_speakers)
    search_q = _bh(tested.p)
    kept = [i for i in np.flatnonzero(search_q <= options.fdr)]
    checks = []
    for i in kept:
        inside = _mask(confirm, tested.conditions[i])
        estimate = _estimate(confirm, inside, ~inside)
        supported = estimate.speakers >= options.min_speakers and estimate.words >= options.min_words
        checks.append((i, inside, estimate, supported))
    usable = [c for c in checks if c[3]]
    confirm_q = _bh([c[2].p_value for c in usable]) if usable else []
    confirmed = []
    for (i, inside, estimate, _), q in zip(usable, confirm_q, strict=True):
        if q <= options.fdr and estimate.difference > 0:
            search_estimate = Estimate(
                float(tested.wer[i]),
                float(tested.complement[i]),
                float(tested.wer[i] - tested.complement[i]),
                float(tested.wer[i] / tested.complement[i]) if tested.complement[i] else None,
                float(tested.z[i]),
                float(tested.p[i]),
                int(tested.speakers[i]),
                int(tested.utterances[i]),
                int(tested.words[i]),
            )
            confirmed.append((tested.conditions[i], inside, estimate, search_estimate, float(search_q[i]), float(q)))
    survivors, pruned = _prune(confirm, confirmed, options.alpha)
    findings = [
        Finding(
            {tag: rows.values[tag][code] for tag, code in conditions},
            search_estimate,
            _with_intervals(confirm, inside, estimate, options),
            sq,
            cq,
        )
        for conditions, inside, estimate, search_estimate, sq, cq in survivors
    ]
    findings.sort(key=lambda f: -f.confirmation.difference)
    return Discovery(
        options,
        tags,
        len(tested.p),
        len(kept),
        len(confirmed),
        findings,
        [{"subgroup": describe({t: rows.values[t][c] for t, c in cond}), "reason": why} for cond, why in pruned],
        search.n_speakers,
        confirm.n_speakers,
    )


def _prune(rows: _DiscoveryRows, confirmed: list[tuple], alpha: float) -> tuple[list[tuple], list[tuple]]:
    """Drop confirmed subgroups that say nothing their relatives do not.

    1. Subgroups with exactly the same utterances (nested or alias tags: ``region=v1`` and
       ``region=v1 ∧ country=c0``) are one finding: the one with the fewest conditions is kept.
    2. A subgroup with confirmed ancestors is *explained* unless it is worse than the rest of every
       one of them, Benjamini-Hochberg-adjusted across all such subgroups (a general effect
       confirms dozens of descendants, and some would beat their ancestor by chance).
    3. An ancestor is *carried* by a confirmed descendant that is not itself explained, when
       without that descendant it is no worse than its complement.
    """
    order = sorted(range(len(confirmed)), key=lambda i: len(confirmed[i][0]))
    masks, sets = [c[1] for c in confirmed], [frozenset(c[0]) for c in confirmed]
    reasons: dict[int, str] = {}
    first_with: dict[bytes, int] = {}
    aliases: dict[int, list[frozenset]] = {}  # a kept subgroup's own conditions and its twins'
    for i in order:
        key = np.packbits(masks[i]).tobytes()
        if key in first_with:
            reasons[i] = f"the same utterances as {_name(rows, sets[first_with[key]])}"
            aliases[first_with[key]].append(sets[i])
        else:
            first_with[key] = i
            aliases[i] = [sets[i]]
    live = [i for i in order if i not in reasons]

    def below(j: int, i: int) -> bool:
        """j's conditions are a strict subset of i's, under any of their twins' conditions."""
        return masks[i].sum() < masks[j].sum() and any(a < b for a in aliases[j] for b in aliases[i])

    beaten: dict[int, tuple[float, int]] = {}  # subgroup -> (largest p against an ancestor, that ancestor)
    for i in live:
        for j in live:
            if below(j, i):
                p = _estimate(rows, masks[i], masks[j] & ~masks[i]).p_value
                if i not in beaten or p > beaten[i][0]:
                    beaten[i] = (p, j)
    explained = set()
    if beaten:
        tested = list(beaten)
        for i, q in zip(tested, _bh([beaten[i][0] for i in tested]), strict=True):
            if q > alpha:
                explained.add(i)
                reasons[i] = f"explained by {_name(rows, sets[beaten[i][1]])}: no worse than the rest of it"
    for j in live:
        if j in reasons:
            continue
        for d in live:
            if d in explained or not below(j, d):
                continue
            if _estimate(rows, masks[j] & ~masks[d], ~masks[j]).p_value > alpha:
                reasons[j] = f"carried by {_name(rows, sets[d])}: without it, no worse than its complement"
                break
    keep = [entry for i, entry in enumerate(confirmed) if i not in reasons]
    return keep, [(confirmed[i][0], reasons[i]) for i in sorted(reasons)]


def _name(rows: _DiscoveryRows, conditions: frozenset[tuple[str, int]]) -> str:
    ordered = sorted(conditions, key=lambda c: list(rows.codes).index(c[0]))
    return describe({tag: rows.values[tag][code] for tag, code in ordered})


# ---------------------------------------------------------------------------------------------- verify


def evaluate(table: pd.DataFrame, conditions: dict[str, str], options: DiscoverOptions) -> Estimate | None:
    """A subgroup against its complement on every speaker of a run (no halves): None when no
    utterance matches."""
    tags = list(conditions)
    missing = [t for t in tags if t not in table.columns]
    if missing:
        raise KeyError(missing[0])
    rows = _rows(table, tags)
    inside = np.ones(len(rows.errors), dtype=bool)
    for tag, value in conditions.items():
        if value not in rows.values[tag]:
            return None
        inside &= rows.codes[tag] == rows.values[tag].index(value)
    if not inside.any() or inside.all():
        return None
    return _with_intervals(rows, inside, _estimate(rows, inside, ~inside), options)


# ---------------------------------------------------------------------------------------------- simulation


def simulate(
    rng: np.random.Generator,
    *,
    speakers: int,
    utterances: int,
    tags: dict[str, int],
    speaker_tags: Sequence[str] = (),
    rate: float = 0.15,
    planted: dict[str, str] | None = None,
    lift: float = 0.0,
    words: int = 10,
    speaker_sd: float = 0.03,
) -> pd.DataFrame:
    """A scored utterance table for checking the search: each tag takes ``tags[tag]`` values
    (``v0``, ``v1``, …), fixed per speaker for ``speaker_tags`` and drawn per utterance otherwise;
    each speaker has their own error rate around ``rate``; utterances matching every condition of
    ``planted`` get ``lift`` more. Errors are binomial over ``words`` words."""
    rows = speakers * utterances
    speaker = np.repeat(np.arange(speakers), utterances)
    frame = {"id": [f"u{i}" for i in range(rows)], "speaker": [f"s{s}" for s in speaker]}
    for tag, count in tags.items():
        draws = rng.integers(0, count, speakers)[speaker] if tag in speaker_tags else rng.integers(0, count, rows)
        frame[tag] = np.array([f"v{i}" for i in range(count)], dtype=object)[draws]
    table = pd.DataFrame(frame)
    p = np.clip(rate + rng.normal(0, speaker_sd, speakers)[speaker], 0.0, 1.0)
    if planted:
        hit = np.logical_and.reduce([table[tag].to_numpy() == value for tag, value in planted.items()])
        p = np.clip(p + lift * hit, 0.0, 1.0)
    errors = rng.binomial(words, p)
    return table.assign(
        status="ok",
        hits=words - errors,
        substitutions=errors,
        deletions=0,
        insertions=0,
        ref_words=words,
        errors=errors,
        wer=errors / words,
        reference="x",
        hypothesis="x",
    )
