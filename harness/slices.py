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
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import InputError, format_validation_error
from harness.where import evaluate, parse_where, referenced
from harness.yamlfile import read_yaml

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

    @field_validator("bins")
    @classmethod
    def _increasing(cls, value: dict[str, tuple[float, ...]]) -> dict[str, tuple[float, ...]]:
        for tag, edges in value.items():
            if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
                raise ValueError(f"bins for {tag} must be at least two increasing edges, e.g. [0, 10, 20]")
        return value

    def where_tags(self) -> list[str]:
        if isinstance(self.where, str):
            return [tag for tag, _ in referenced(parse_where(self.where))]
        return list(self.where)

    def where_mask(self, frame: pd.DataFrame) -> pd.Series:
        if isinstance(self.where, str):
            return evaluate(parse_where(self.where), frame)
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
        raise InputError(f"{path}: {format_validation_error(exc)}") from None


def default_slices(tag_names: Sequence[str]) -> list[SliceSpec]:
    """Without a slice file: one dimension per tag present in the manifest."""
    return [SliceSpec(by=(tag,)) for tag in tag_names]


def check_slices(specs: Sequence[SliceSpec], rows: pd.DataFrame, tags: Sequence[str], source: str) -> None:
    """Fail early, with a suggestion, on what would otherwise silently match nothing: a tag no
    utterance carries, a ``where``/``groups`` value no utterance has, ``bins`` on a tag that is
    not numeric, or a ``reference`` that is not one of the dimension's slices."""
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


def slice_frame(tags: pd.DataFrame, spec: SliceSpec) -> pd.DataFrame:
    """Per utterance (index aligned with ``tags``): one column per ``by`` tag holding the
    (binned, grouped) value, and ``LABEL`` joining them; it is NA where ``where`` excludes it."""
    frame = pd.DataFrame(index=tags.index)
    for tag in spec.by:
        column = tags[tag] if tag in tags else pd.Series(pd.NA, index=tags.index, dtype="object")
        if tag in spec.bins:
            column = _bin(column, spec.bins[tag])
        column = column.astype("object").where(column.notna(), MISSING)
        mapping = {value: group for group, values in spec.groups.get(tag, {}).items() for value in values}
        frame[tag] = column.map(lambda v, m=mapping: m.get(v, v))
    label = (
        frame[spec.by[0]]
        if len(spec.by) == 1
        else frame[spec.by[0]].str.cat([frame[tag] for tag in spec.by[1:]], sep=JOIN)
    )
    frame[LABEL] = label.where(spec.where_mask(tags), pd.NA)
    return frame


def _bin(column: pd.Series, edges: Sequence[float]) -> pd.Series:
    """``[lo, hi)`` labels; the last bin is closed. Values outside every bin get OUTSIDE."""
    numbers = pd.to_numeric(column, errors="coerce")
    labels = [f"[{lo:g}, {hi:g})" for lo, hi in itertools.pairwise(edges)]
    labels[-1] = labels[-1][:-1] + "]"
    binned = pd.cut(numbers, bins=list(edges), labels=labels, right=False, include_lowest=True).astype("object")
    binned = binned.where(~(numbers == edges[-1]), labels[-1])  # include the top edge
    return binned.where(numbers.isna() | binned.notna(), OUTSIDE).where(column.notna(), pd.NA)
