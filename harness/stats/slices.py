"""Slice definitions (YAML) and the group label each utterance gets under each of them.

```yaml
version: 1
slices:
  - by: accent                      # one dimension
  - by: [accent, noise]             # intersection: one slice per (accent, noise) pair
  - by: dialect
    where: {device: [tts, phone]}   # keep only these utterances for this dimension
    groups: {dialect: {northern-english: [lancastrian, west-midlands]}}  # merge values
```
An utterance without a tag named in ``by`` is labelled ``(missing)``: counted, never dropped.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import InputError, format_validation_error
from harness.stats.arrays import unique_inverse
from harness.stats.where import evaluate, parse_where, referenced
from harness.yamlfile import read_yaml

if TYPE_CHECKING:
    import pandas as pd  # imported by the functions that slice rows: a config names slices without it

MISSING = "(missing)"
OUTSIDE = "(outside bins)"
UNRANKED = frozenset({MISSING, OUTSIDE})
JOIN = " × "
LABEL = "__slice__"


class SliceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    by: tuple[str, ...]
    name: str | None = None
    where: dict[str, tuple[str, ...]] | str = Field(default_factory=dict)
    groups: dict[str, dict[str, tuple[str, ...]]] = Field(default_factory=dict)
    bins: dict[str, tuple[float, ...]] = Field(default_factory=dict)
    reference: str | None = None

    @field_validator("by", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list | tuple) and not value:
            raise ValueError("by: needs at least one tag")
        return value

    @field_validator("where", mode="before")
    @classmethod
    def _where_lists(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: (v,) if isinstance(v, str) else v for k, v in value.items()}
        if isinstance(value, str):
            parse_where(value)  # raises WhereError (a ValueError) with the reason
        return value

    @field_validator("groups")
    @classmethod
    def _disjoint(cls, value: dict[str, dict[str, tuple[str, ...]]]) -> dict[str, dict[str, tuple[str, ...]]]:
        """A value in two groups would land in whichever came last, silently."""
        for tag, groups in value.items():
            owner: dict[str, str] = {}
            for group, members in groups.items():
                for member in members:
                    if owner.setdefault(member, group) != group:
                        raise ValueError(
                            f"groups for {tag}: '{member}' is in both '{owner[member]}' and '{group}'; "
                            "put each value in one group"
                        )
        return value

    @field_validator("bins")
    @classmethod
    def _increasing(cls, value: dict[str, tuple[float, ...]]) -> dict[str, tuple[float, ...]]:
        for tag, edges in value.items():
            # not (b > a): a NaN edge compares false both ways and would reach pd.cut
            if len(edges) < 2 or any(not b > a for a, b in itertools.pairwise(edges)):
                raise ValueError(f"bins for {tag} must be at least two increasing edges, e.g. [0, 10, 20]")
        return value

    def where_mask(self, frame: pd.DataFrame) -> pd.Series:
        if isinstance(self.where, str):
            return evaluate(parse_where(self.where), frame)
        import pandas as pd

        keep = pd.Series(True, index=frame.index)
        for tag, allowed in self.where.items():
            keep &= frame[tag].isin(allowed) if tag in frame else False
        return keep

    @property
    def label(self) -> str:
        return self.name or JOIN.join(self.by)


class SliceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    slices: list[SliceSpec] = Field(min_length=1)


def load_slices(path: str | Path) -> list[SliceSpec]:
    path = Path(path)
    data = read_yaml(path, "slice file")
    try:
        return SliceFile.model_validate(data).slices
    except ValidationError as exc:
        raise InputError(f"{path}: {format_validation_error(exc, model=SliceFile)}") from None


def default_slices(tag_names: Sequence[str]) -> list[SliceSpec]:
    """Without a slice file: one dimension per tag present in the manifest."""
    return [SliceSpec(by=(tag,)) for tag in tag_names]


@dataclass(frozen=True)
class DroppedSlice:
    """A dimension left out because another one groups exactly the same utterances."""

    name: str
    duplicate_of: str
    single_valued: tuple[str, ...]  # its tags with one value in the data: why it duplicates

    def describe(self) -> str:
        why = (
            " (" + ", ".join(f"{tag} has one value" for tag in self.single_valued) + ")" if self.single_valued else ""
        )
        return f"slice dimension '{self.name}' left out: the same groups of utterances as '{self.duplicate_of}'{why}"


def drop_duplicate_dimensions(
    specs: Sequence[SliceSpec], rows: pd.DataFrame
) -> tuple[list[SliceSpec], list[DroppedSlice]]:
    """Leave out each dimension whose slices hold the same utterances as an earlier-kept one's
    (``accent × noise`` when ``noise`` has one value duplicates ``accent``): every table, check and
    Holm family would count it twice. The dimension with fewer tags is kept. Dimensions of a single
    slice are kept (they duplicate only the overall figure, and are reported as such)."""
    dropped = duplicate_dimensions(specs, rows)
    return [spec for i, spec in enumerate(specs) if i not in dropped], list(dropped.values())


def duplicate_dimensions(specs: Sequence[SliceSpec], rows: pd.DataFrame) -> dict[int, DroppedSlice]:
    """:func:`drop_duplicate_dimensions`' verdict: each left-out dimension by its index in ``specs``,
    in index order."""
    import pandas as pd

    coder = TagCodes(rows)
    seen: dict[tuple[bytes, bytes], SliceSpec] = {}
    dropped: dict[int, DroppedSlice] = {}
    for index in sorted(range(len(specs)), key=lambda i: (len(specs[i].by), i)):
        spec = specs[index]
        codes = slice_codes(rows, spec, coder)
        if len(codes.labels) < 2:
            continue
        groups = pd.factorize(codes.codes)[0]  # the partition, whatever the labels
        key = (groups.astype(np.int64).tobytes(), (codes.codes < 0).tobytes())
        kept = seen.setdefault(key, spec)
        if kept is not spec:
            single = tuple(tag for tag in spec.by if tag not in kept.by and len(set(coder(tag)[1])) <= 1)
            dropped[index] = DroppedSlice(spec.label, kept.label, single)
    return {i: dropped[i] for i in sorted(dropped)}


def check_slices(specs: Sequence[SliceSpec], rows: pd.DataFrame, tags: Sequence[str], source: str) -> None:
    """Fail early, with a suggestion, on what would otherwise silently match nothing: a tag no
    utterance carries, a ``where``/``groups`` value no utterance has, ``bins`` on a tag that is
    not numeric, or a ``reference`` that is not one of the dimension's slices."""
    import pandas as pd

    values = tag_values(rows, tags)
    for spec in specs:
        where_pairs = (
            list(referenced(parse_where(spec.where)))
            if isinstance(spec.where, str)
            else [(tag, v) for tag, vs in spec.where.items() for v in vs]
        )
        for tag in (*spec.by, *(t for t, _ in where_pairs), *spec.groups, *spec.bins):
            if tag not in values:
                raise InputError(
                    f"{source}: slice '{spec.label}' uses tag '{tag}' that no utterance has; "
                    f"{_suggest(tag, values)}tags in the data: {', '.join(sorted(values)) or 'none'}"
                )
        listed = [(tag, v, "where") for tag, v in where_pairs if isinstance(v, str)]
        listed += [(tag, v, "groups") for tag, groups in spec.groups.items() for vs in groups.values() for v in vs]
        for tag, value, key in listed:
            if value not in values[tag]:
                raise InputError(
                    f"{source}: slice '{spec.label}' {key}: no utterance has {tag}='{value}'; "
                    f"{_suggest(value, values[tag])}values of {tag}: {', '.join(sorted(values[tag]))}"
                )
        for tag, groups in spec.groups.items():
            for group, members in groups.items():
                if group in values[tag] and group not in members:  # its own utterances would join the group
                    raise InputError(
                        f"{source}: slice '{spec.label}' groups: '{group}' is also a value of {tag} that the group "
                        f"does not list, so {tag}='{group}' would merge into it silently; rename the group or list it"
                    )
        for tag in spec.bins:
            bad = sorted(v for v in values[tag] if pd.isna(pd.to_numeric(v, errors="coerce")))
            if bad:
                raise InputError(
                    f"{source}: slice '{spec.label}' bins: tag {tag} has non-numeric values ({', '.join(bad[:5])})"
                )
        if spec.reference is not None:
            labels = set(slice_frame(rows, spec)[LABEL].dropna())
            if spec.reference not in labels:
                raise InputError(
                    f"{source}: slice '{spec.label}' reference '{spec.reference}' is not one of its slices; "
                    f"{_suggest(spec.reference, labels)}slices: {', '.join(sorted(labels))}"
                )


def tag_values(rows: pd.DataFrame, tags: Sequence[str]) -> dict[str, set[str]]:
    return {tag: set(rows[tag].dropna().astype(str)) for tag in tags if tag in rows}


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


@dataclass(frozen=True)
class SliceCodes:
    """Each row's slice as an integer (-1: excluded by ``where``), slices sorted by label."""

    codes: np.ndarray
    labels: list[str]
    values: list[dict[str, str]]  # per slice: tag -> (binned, grouped) value


class TagCodes:
    """Factorises each tag column once, so every dimension works on integers, not strings."""

    def __init__(self, tags: pd.DataFrame) -> None:
        self._tags = tags
        self._cache: dict[str, tuple[np.ndarray, list[str]]] = {}

    def __call__(self, tag: str) -> tuple[np.ndarray, list[str]]:
        """Codes (-1 where the tag is missing) and the distinct values."""
        if tag not in self._cache:
            import pandas as pd

            if tag in self._tags:
                codes, uniques = pd.factorize(self._tags[tag].astype("object"), use_na_sentinel=True)
                self._cache[tag] = (np.asarray(codes, dtype=np.int64), [str(u) for u in uniques])
            else:
                self._cache[tag] = (np.full(len(self._tags), -1, dtype=np.int64), [])
        return self._cache[tag]


def slice_codes(tags: pd.DataFrame, spec: SliceSpec, coder: TagCodes | None = None) -> SliceCodes:
    """Vectorised: bins and groups are applied to each tag's distinct values, never per row."""
    coder = coder or TagCodes(tags)
    combined = np.zeros(len(tags), dtype=np.int64)
    shown_per_tag: list[list[str]] = []
    for tag in spec.by:
        codes, uniques = coder(tag)
        shown = _display_values(uniques, spec.bins.get(tag), spec.groups.get(tag, {}))
        distinct = sorted(set(shown) | {MISSING})
        position = {value: k for k, value in enumerate(distinct)}
        lookup = np.array([position[v] for v in shown] + [position[MISSING]], dtype=np.int64)
        combined = combined * len(distinct) + lookup[codes]  # code -1 picks the MISSING entry
        shown_per_tag.append(distinct)
    keep = spec.where_mask(tags).to_numpy(dtype=bool)
    present, inverse = unique_inverse(combined[keep])
    parts = [_unravel(int(c), [len(d) for d in shown_per_tag]) for c in present]
    values = [
        {tag: shown_per_tag[t][k] for t, (tag, k) in enumerate(zip(spec.by, part, strict=True))} for part in parts
    ]
    labels = [JOIN.join(v.values()) for v in values]
    order = np.argsort(labels, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = np.full(len(tags), -1, dtype=np.int64)
    codes[keep] = rank[inverse] if len(order) else -1
    return SliceCodes(codes, [labels[i] for i in order], [values[i] for i in order])


def _display_values(uniques: list[str], edges: Sequence[float] | None, groups: dict[str, tuple[str, ...]]) -> list[str]:
    import pandas as pd

    shown = _bin(pd.Series(uniques, dtype="object"), edges).tolist() if edges else list(uniques)
    mapping = {value: group for group, members in groups.items() for value in members}
    return [mapping.get(v, v) for v in shown]


def _unravel(code: int, sizes: list[int]) -> list[int]:
    out = []
    for size in reversed(sizes):
        code, rest = divmod(code, size)
        out.append(rest)
    return out[::-1]


def slice_frame(tags: pd.DataFrame, spec: SliceSpec) -> pd.DataFrame:
    """Per utterance (index aligned with ``tags``): one column per ``by`` tag holding the
    (binned, grouped) value, and ``LABEL`` joining them; it is NA where ``where`` excludes it."""
    import pandas as pd

    coded = slice_codes(tags, spec)
    frame = pd.DataFrame(index=tags.index)
    inside = coded.codes >= 0
    for tag in spec.by:
        column = np.array([v[tag] for v in coded.values] + [None], dtype=object)
        frame[tag] = column[np.where(inside, coded.codes, len(coded.values))]
    labels = np.array([*coded.labels, None], dtype=object)
    frame[LABEL] = pd.Series(labels[np.where(inside, coded.codes, len(coded.labels))], index=tags.index).astype(
        "object"
    )
    frame.loc[~inside, LABEL] = pd.NA
    return frame


def _bin(column: pd.Series, edges: Sequence[float]) -> pd.Series:
    """``[lo, hi)`` labels; the last bin is closed. Values outside every bin get OUTSIDE."""
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce")
    labels = [f"[{lo:g}, {hi:g})" for lo, hi in itertools.pairwise(edges)]
    labels[-1] = labels[-1][:-1] + "]"
    binned = pd.cut(numbers, bins=list(edges), labels=labels, right=False, include_lowest=True).astype("object")
    binned = binned.where(~(numbers == edges[-1]), labels[-1])  # include the top edge
    return binned.where(numbers.isna() | binned.notna(), OUTSIDE).where(column.notna(), pd.NA)
