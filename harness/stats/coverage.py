"""What a manifest can show before anything is transcribed: speakers, utterances, reference words
and hours per cell of every tag dimension and every pair of dimensions.

Accent × dialect × device × noise makes so many combinations that most cells of a real test set
are thin or empty, and a thin slice with "no significant gap" is absence of evidence, not
evidence of fairness. ``asrfair coverage`` lists which cells are covered, which are under the
support thresholds (``min_speakers``, ``min_words``, the same rule that keeps a slice from being
ranked in a run) and which combinations never occur. It needs no backend and decodes no audio.

Reading is vectorised (pyarrow for JSONL, pandas for CSV) so a million-line manifest takes
seconds; a manifest that fails the fast checks is handed to the full validator, whose first error
(file, line, field) is raised, so bad input reads exactly as it does everywhere else.
"""

from __future__ import annotations

import csv
import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import soundfile as sf

from harness.data.manifest import (
    DATASET_CARD,
    RESERVED_FIELDS,
    RESULT_COLUMNS,
    audio_roots_of,
    is_inside,
    load_manifest,
    read_vocabulary,
)
from harness.errors import InputError
from harness.stats.slices import DroppedSlice, SliceSpec, TagCodes, check_slices, drop_duplicate_dimensions, slice_codes
from harness.yamlfile import read_yaml

log = logging.getLogger(__name__)

# Tag names that describe people rather than recordings; such a tag must be self-reported.
DEMOGRAPHIC_TAGS = frozenset(
    {"age", "age_band", "age_group", "gender", "sex", "ethnicity", "race", "religion", "disability"}
)
MAX_EMPTY_LISTED = 50


@dataclass(frozen=True)
class CoverageCell:
    label: str
    values: dict[str, str]
    speakers: int
    utterances: int
    words: int  # whitespace-separated words of the raw reference (a run counts normalised words)
    hours: float | None  # None when some utterance's duration is unknown (--no-audio, no `duration`)
    thin: bool
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CoverageTable:
    name: str
    by: list[str]
    cells: list[CoverageCell]
    empty: list[dict[str, str]]  # combinations of observed values with no utterance at all
    kind: str  # tag | pair | slice file


@dataclass(frozen=True)
class Coverage:
    manifest: str
    utterances: int
    speakers: int
    hours: float | None
    min_speakers: int
    min_words: int
    tables: list[CoverageTable]
    warnings: list[str]
    repeated: list[DroppedSlice] = field(default_factory=list)  # pair tables left out: they repeat a tag's


@dataclass(frozen=True)
class _CoverageRows:
    """The columns coverage needs, one row per utterance."""

    tags: pd.DataFrame
    speaker: np.ndarray  # speaker code per row; an utterance without a speaker is its own
    words: np.ndarray
    seconds: np.ndarray  # NaN where unknown


MAX_PAIR_TAGS = 40  # 40 tags make 780 pair tables; 3,000 tags made 4.5 million, an effective hang


def coverage(
    manifest: Path,
    *,
    slices: Sequence[SliceSpec] = (),
    min_speakers: int = 5,
    min_words: int = 200,
    read_durations: bool = True,
    audio_roots: Sequence[Path] = (),
    max_pair_tags: int = MAX_PAIR_TAGS,
) -> Coverage:
    """Counts per tag value and pair. Durations missing from the manifest come from audio headers,
    read only inside the manifest's folder and ``audio_roots`` (the rule every reader of audio keeps)."""
    rows = _read(manifest, audio_roots_of(manifest, audio_roots) if read_durations else None)
    tags = [t for t in rows.tags.columns if t != "language" or rows.tags[t].nunique() > 1]
    pairs = list(itertools.combinations(tags, 2)) if len(tags) <= max_pair_tags else []
    singles = [SliceSpec(by=(t,)) for t in tags]
    pairs, repeated = _informative_pairs(rows.tags, singles, pairs)
    specs = singles + pairs
    kinds = ["tag"] * len(tags) + ["pair"] * (len(specs) - len(tags))
    if slices:
        check_slices(list(slices), rows.tags, list(rows.tags.columns), "--slices")
        plain = {s.by for s in specs}
        for spec in slices:
            if spec.by not in plain or spec.where or spec.groups or spec.bins or spec.name:
                specs.append(spec)
                kinds.append("slice file")
    coder = TagCodes(rows.tags)
    tables = [_table(rows, spec, kind, coder, min_speakers, min_words) for spec, kind in zip(specs, kinds, strict=True)]
    seconds = rows.seconds
    return Coverage(
        str(manifest),
        len(rows.tags),
        len(np.unique(rows.speaker)),
        None if np.isnan(seconds).any() else float(seconds.sum() / 3600),
        min_speakers,
        min_words,
        tables,
        demographic_warnings(manifest, tags) + _pairs_skipped(tags, max_pair_tags),
        repeated,
    )


def _informative_pairs(
    tags: pd.DataFrame, singles: list[SliceSpec], pairs: list[tuple[str, str]]
) -> tuple[list[SliceSpec], list[DroppedSlice]]:
    """The pair tables that show something the one-tag tables do not. A pair whose cells hold the same
    utterances as one of its tags' cells repeats that table row for row: a tag with one value
    (``accent × noise`` = ``accent``), or one nested in the other (``accent × voice`` = ``voice``
    when each voice has one accent); its "empty combinations" are structural, not gaps."""
    constant = {spec.by[0] for spec in singles if tags[spec.by[0]].nunique(dropna=False) <= 1}
    kept, repeated = [], []
    for pair in pairs:
        one_valued = tuple(t for t in pair if t in constant)
        if one_valued:
            other = next((t for t in pair if t not in constant), pair[0])
            repeated.append(DroppedSlice(" × ".join(pair), other, one_valued))
        else:
            kept.append(SliceSpec(by=pair))
    informative, nested = drop_duplicate_dimensions(singles + kept, tags)
    return [s for s in informative if len(s.by) == 2], repeated + nested


def _pairs_skipped(tags: Sequence[str], limit: int) -> list[str]:
    if len(tags) <= limit:
        return []
    return [
        f"{len(tags)} tags make {len(tags) * (len(tags) - 1) // 2:,} pairs; pair tables are skipped above "
        f"--max-pair-tags {limit} (name the pairs that matter in a --slices file)"
    ]


def coverage_of_table(
    table: pd.DataFrame, specs: Sequence[SliceSpec], min_speakers: int, min_words: int
) -> list[CoverageTable]:
    """Coverage tables of a run's utterance table (words as scored, after normalisation)."""
    from harness.scoring.table import tag_columns  # scoring and stats are downstream of reading manifests
    from harness.stats.by_slice import cluster_units

    rows = _CoverageRows(
        table[tag_columns(table)].reset_index(drop=True),
        pd.factorize(cluster_units(table))[0],
        table["ref_words"].fillna(0).to_numpy(dtype=np.int64),
        np.full(len(table), np.nan),
    )
    coder = TagCodes(rows.tags)
    return [_table(rows, spec, "pair", coder, min_speakers, min_words) for spec in specs]


def _table(
    rows: _CoverageRows, spec: SliceSpec, kind: str, coder: TagCodes, min_speakers: int, min_words: int
) -> CoverageTable:
    coded = slice_codes(rows.tags, spec, coder)
    keep = coded.codes >= 0
    codes, k = coded.codes[keep], len(coded.labels)
    utterances = np.bincount(codes, minlength=k)
    words = np.bincount(codes, weights=rows.words[keep], minlength=k).astype(np.int64)
    seconds = np.bincount(codes, weights=np.nan_to_num(rows.seconds[keep]), minlength=k)
    unknown = np.bincount(codes, weights=np.isnan(rows.seconds[keep]), minlength=k) > 0
    pairs = np.unique(codes.astype(np.int64) * (int(rows.speaker.max(initial=0)) + 1) + rows.speaker[keep])
    speakers = np.bincount(pairs // (int(rows.speaker.max(initial=0)) + 1), minlength=k)
    cells = []
    for i, label in enumerate(coded.labels):
        reasons = []
        if speakers[i] < min_speakers:
            reasons.append(f"speakers<{min_speakers}")
        if words[i] < min_words:
            reasons.append(f"words<{min_words}")
        cells.append(
            CoverageCell(
                label,
                coded.values[i],
                int(speakers[i]),
                int(utterances[i]),
                int(words[i]),
                None if unknown[i] else float(seconds[i] / 3600),
                bool(reasons),
                reasons,
            )
        )
    return CoverageTable(spec.label, list(spec.by), cells, _empty_combinations(spec, coded.values), kind)


def _empty_combinations(spec: SliceSpec, present: list[dict[str, str]]) -> list[dict[str, str]]:
    """Every combination of the values seen per tag that no utterance has."""
    if len(spec.by) < 2:
        return []
    seen = [sorted({v[tag] for v in present}) for tag in spec.by]
    have = {tuple(v[tag] for tag in spec.by) for v in present}
    return [dict(zip(spec.by, combo, strict=True)) for combo in itertools.product(*seen) if combo not in have]


def demographic_warnings(manifest: Path, tags: Sequence[str]) -> list[str]:
    """Demographic tags (by name, or marked ``demographic: true`` in dataset.yaml) that the card
    does not declare ``self_reported: true``: imputed demographics must not back fairness claims."""
    card = manifest.parent / DATASET_CARD
    declared: dict[str, Any] = {}
    if card.is_file():
        data = read_yaml(card, "dataset card") or {}
        declared = data.get("tags", {}) if isinstance(data, dict) else {}
        declared = declared if isinstance(declared, dict) else {}
    warnings = []
    for tag in tags:
        spec = declared.get(tag) if isinstance(declared.get(tag), dict) else {}
        if not (tag.lower() in DEMOGRAPHIC_TAGS or spec.get("demographic") is True):
            continue
        if spec.get("self_reported") is not True:
            where = f"{card}" if card.is_file() else f"{DATASET_CARD} (none beside the manifest)"
            warnings.append(
                f"tag '{tag}' is demographic but {where} does not declare it 'self_reported: true'; "
                "imputed or annotator-guessed demographics must not be used for fairness claims"
            )
    return warnings


# ---------------------------------------------------------------------------------------------- reading


def _read(manifest: Path, roots: Sequence[Path] | None) -> _CoverageRows:
    if not manifest.is_file():
        raise InputError(f"{manifest}: manifest not found; pass the path to a .jsonl or .csv file")
    table = _fast_table(manifest)
    if table is None:
        return _validated_rows(manifest, roots)
    ids = table["id"].astype(str)
    speakers = table["speaker"] if "speaker" in table else pd.Series([None] * len(table), dtype="object")
    units = speakers.astype("object").where(speakers.notna(), "utt:" + ids)
    tag_names = [c for c in table.columns if c not in RESERVED_FIELDS]
    tags = table[tag_names].astype("object").where(table[tag_names].notna(), None)
    tags["language"] = table["language"].fillna("en") if "language" in table else "en"
    seconds = _seconds(manifest, table, roots)
    return _CoverageRows(tags.reset_index(drop=True), pd.factorize(units)[0], _word_counts(table["text"]), seconds)


def _fast_table(manifest: Path) -> pd.DataFrame | None:
    """The manifest as a frame when it passes the vectorised checks; None sends it to the validator."""
    try:
        frame = _csv_frame(manifest) if manifest.suffix.lower() == ".csv" else _jsonl_frame(manifest)
    except (pa.ArrowInvalid, ValueError, UnicodeDecodeError, csv.Error):
        return None
    if frame is None or not _passes(manifest, frame):
        return None
    empty = [c for c in frame.columns if c not in RESERVED_FIELDS and frame[c].isna().all()]
    return frame.drop(columns=empty)  # a tag no utterance carries is no tag, as in the validator


# A key whose value is JSON null: Arrow reads it as missing, the validator rejects it.
_JSON_NULL = re.compile(rb'"\s*:\s*null\s*[,}]')


# A line break that only the validator reads right: a CR without LF (it rejects the line; Arrow splits on it).
_LONE_CR = re.compile(rb"\r(?!\n)")
# A non-blank line that does not open an object (``null``, ``[...]``): Arrow's reader crashes on some.
_NOT_OBJECT = re.compile(rb"(?m)^[ \t]*[^{\s]")
_OBJECT = re.compile(rb"(?m)^[ \t]*\{")
_JSON_STRING = re.compile(rb'"(?:[^"\\\n]|\\.)*"')


def _jsonl_frame(manifest: Path) -> pd.DataFrame | None:
    raw = manifest.read_bytes()  # read once: scanned, then parsed from memory
    if _JSON_NULL.search(raw) or not _flat_jsonl(raw):
        return None
    arrow = pajson.read_json(pa.BufferReader(raw), parse_options=pajson.ParseOptions(newlines_in_values=False))
    if any(pa.types.is_nested(f.type) for f in arrow.schema):
        return None
    for column in ("offset", "duration"):  # NaN/Infinity literals, which the validator refuses
        values = arrow[column] if column in arrow.column_names else None
        if values is not None and pa.types.is_floating(values.type) and pc.all(pc.is_finite(values)).as_py() is False:
            return None
    return arrow.to_pandas()


def _flat_jsonl(raw: bytes) -> bool:
    """Only UTF-8 lines each holding one object of scalars reach Arrow's reader: a ``null`` line or deep
    nesting makes it segfault, Latin-1 fails late, a lone CR splits lines the validator keeps whole."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if _LONE_CR.search(raw) or _NOT_OBJECT.search(raw):
        return False
    objects = len(_OBJECT.findall(raw))
    if raw.count(b"{") == objects and b"[" not in raw:
        return True
    bare = _JSON_STRING.sub(b'""', raw)  # braces inside strings are text; outside, they nest
    return bare.count(b"{") == objects and b"[" not in bare


def _csv_frame(manifest: Path) -> pd.DataFrame | None:
    """Python's csv module in strict mode, as the validator reads it (its reader is C, so fast)."""
    with manifest.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, strict=True))
    if not rows or not rows[0] or any(not name for name in rows[0]) or len(set(rows[0])) != len(rows[0]):
        return None
    header, body = rows[0], rows[1:]
    if any(len(row) != len(header) for row in body):
        return None
    frame = pd.DataFrame(body, columns=header, dtype=object).replace("", None)  # an empty cell is absent
    for column in ("offset", "duration"):
        if column in frame:
            numbers = pd.to_numeric(frame[column])
            if (numbers.isna() != frame[column].isna()).any():  # "nan" text: the validator refuses it
                return None
            frame[column] = numbers
    return frame


def _passes(manifest: Path, frame: pd.DataFrame) -> bool:
    required = ("id", "audio", "text")
    if len(frame) == 0 or any(c not in frame or frame[c].isna().any() for c in required):
        return False
    if any(c in RESULT_COLUMNS for c in frame.columns) or frame.columns.duplicated().any():
        return False
    strings = [c for c in frame.columns if c not in ("offset", "duration")]
    if any(not _all_text(frame[c]) for c in strings):
        return False
    non_empty = [c for c in ("id", "audio", "text", "speaker", "language") if c in frame]
    if any((frame[c].dropna().str.strip() == "").any() for c in non_empty) or frame["id"].duplicated().any():
        return False
    for column in ("offset", "duration"):
        if column not in frame:
            continue
        values = frame[column]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            return False
        present = values.dropna().to_numpy(dtype=float)
        if not (np.isfinite(present).all() and (present > 0 if column == "duration" else present >= 0).all()):
            return False
    vocabulary = read_vocabulary(manifest.parent / DATASET_CARD)
    return all(frame[tag].dropna().isin(allowed).all() for tag, allowed in vocabulary.items() if tag in frame)


def _all_text(column: pd.Series) -> bool:
    """Every present value is a string (a string dtype guarantees it; object columns are checked)."""
    if isinstance(column.dtype, pd.StringDtype):
        return True
    return bool(column.dropna().map(lambda v: isinstance(v, str)).all())


def _validated_rows(manifest: Path, roots: Sequence[Path] | None) -> _CoverageRows:
    """The slow path: the full validator raises the first problem with its file and line."""
    loaded = load_manifest(manifest, check_audio=False, audio_roots=None)  # _seconds keeps the rule
    utterances = loaded.utterances
    tags = pd.DataFrame([{**u.tags, "language": u.language} for u in utterances])
    units = [u.speaker if u.speaker else f"utt:{u.id}" for u in utterances]
    frame = pd.DataFrame(
        {
            "audio": [str(u.audio) for u in utterances],
            "offset": [u.offset for u in utterances],
            "duration": [np.nan if u.duration is None else u.duration for u in utterances],
        }
    )
    words = _word_counts(pd.Series([u.text for u in utterances]))
    return _CoverageRows(tags, pd.factorize(pd.Series(units))[0], words, _seconds(manifest, frame, roots))


def _word_counts(text: pd.Series) -> np.ndarray:
    lengths = pc.list_value_length(pc.utf8_split_whitespace(pa.array(text.astype(str))))
    return np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64)


def _seconds(manifest: Path, frame: pd.DataFrame, roots: Sequence[Path] | None) -> np.ndarray:
    """Seconds per row: ``duration``, else the audio header's length (``roots`` None: never read)."""
    """``duration`` where given; otherwise the audio file's length (its header only) after ``offset``."""
    duration = (
        frame["duration"].to_numpy(dtype=float) if "duration" in frame else np.full(len(frame), np.nan, dtype=float)
    )
    missing = np.isnan(duration)
    if not missing.any() or roots is None:
        return duration
    offset = frame["offset"].fillna(0.0).to_numpy(dtype=float) if "offset" in frame else np.zeros(len(frame))
    paths = frame["audio"].astype(str)
    lengths: dict[str, float] = {}
    outside = 0
    for audio in paths[missing].unique():
        lengths[audio] = np.nan  # unreadable, missing or not ours to open: `asrfair validate` says which
        try:
            path = (Path(audio) if Path(audio).is_absolute() else manifest.parent / audio).resolve()
        except (OSError, ValueError, RuntimeError):  # RuntimeError: a symlink loop
            continue
        if not is_inside(path, roots):
            outside += 1
            continue
        try:
            info = sf.info(str(path))
            lengths[audio] = info.frames / info.samplerate if info.samplerate else np.nan
        except (sf.LibsndfileError, RuntimeError, OSError):
            log.debug("no duration for %s", path)
    if outside:
        log.warning(
            "%s: %d audio files lie outside the manifest's folder and were not opened; their hours are unknown "
            "(allow their folder with --audio-root)",
            manifest,
            outside,
        )
    filled = paths.map(lengths).to_numpy(dtype=float) - offset
    filled[filled <= 0] = np.nan  # an offset past the file's end: unknown, as `asrfair validate` reports
    return np.where(missing, filled, duration)


def cell_text(cell: CoverageCell) -> str:
    """A matrix cell: speakers and words (the support rule's two counts)."""
    return f"{cell.speakers} spk · {cell.words} w"


def matrix(table: CoverageTable) -> tuple[str, str, list[str], list[str], dict[tuple[str, str], CoverageCell]]:
    """A pair as a matrix: the tag with more values down the side (tables grow down, not across),
    its values, the other's values, and the cell at each (row, column); None where empty."""
    down, across = table.by
    values = {tag: sorted({c.values[tag] for c in table.cells} | {e[tag] for e in table.empty}) for tag in table.by}
    if len(values[across]) > len(values[down]):
        down, across = across, down
    cells = {(c.values[down], c.values[across]): c for c in table.cells}
    return down, across, values[down], values[across], cells
