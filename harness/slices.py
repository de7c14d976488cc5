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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import InputError, format_validation_error
from harness.yamlfile import read_yaml

MISSING = "(missing)"
JOIN = " × "
LABEL = "__slice__"


class SliceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    by: tuple[str, ...]
    name: str | None = None
    where: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    groups: dict[str, dict[str, tuple[str, ...]]] = Field(default_factory=dict)

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
        return value

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


def check_slices(specs: Sequence[SliceSpec], values: Mapping[str, set[str]], source: str) -> None:
    """Fail early, with a suggestion, when a slice names a tag no utterance carries, or a
    ``where``/``groups`` value no utterance has (a typo would otherwise silently match nothing)."""
    for spec in specs:
        for tag in (*spec.by, *spec.where, *spec.groups):
            if tag not in values:
                raise InputError(
                    f"{source}: slice '{spec.label}' uses tag '{tag}' that no utterance has; "
                    f"{_suggest(tag, values)}tags in the data: {', '.join(sorted(values)) or 'none'}"
                )
        listed = [(tag, v, "where") for tag, vs in spec.where.items() for v in vs]
        listed += [(tag, v, "groups") for tag, groups in spec.groups.items() for vs in groups.values() for v in vs]
        for tag, value, key in listed:
            if value not in values[tag]:
                raise InputError(
                    f"{source}: slice '{spec.label}' {key}: no utterance has {tag}='{value}'; "
                    f"{_suggest(value, values[tag])}values of {tag}: {', '.join(sorted(values[tag]))}"
                )


def tag_values(rows: pd.DataFrame, tags: Sequence[str]) -> dict[str, set[str]]:
    return {tag: set(rows[tag].dropna().astype(str)) for tag in tags if tag in rows}


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def slice_frame(tags: pd.DataFrame, spec: SliceSpec) -> pd.DataFrame:
    """Per utterance (index aligned with ``tags``): one column per ``by`` tag holding the
    (grouped) value, and ``LABEL`` joining them; it is NA where ``where`` excludes it."""
    frame = pd.DataFrame(index=tags.index)
    for tag in spec.by:
        column = tags[tag] if tag in tags else pd.Series(pd.NA, index=tags.index, dtype="object")
        column = column.astype("object").where(column.notna(), MISSING)
        mapping = {value: group for group, values in spec.groups.get(tag, {}).items() for value in values}
        frame[tag] = column.map(lambda v, m=mapping: m.get(v, v))
    label = (
        frame[spec.by[0]]
        if len(spec.by) == 1
        else frame[spec.by[0]].str.cat([frame[tag] for tag in spec.by[1:]], sep=JOIN)
    )
    keep = pd.Series(True, index=tags.index)
    for tag, allowed in spec.where.items():
        keep &= tags[tag].isin(allowed) if tag in tags else False
    frame[LABEL] = label.where(keep, pd.NA)
    return frame
