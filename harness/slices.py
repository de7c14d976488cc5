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
from collections.abc import Sequence
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
    slices: list[SliceSpec]


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


def check_tags(specs: Sequence[SliceSpec], tag_names: Sequence[str], source: str) -> None:
    """Fail early, with a suggestion, when a slice names a tag no utterance carries."""
    known = set(tag_names)
    for spec in specs:
        for tag in (*spec.by, *spec.where, *spec.groups):
            if tag not in known:
                close = difflib.get_close_matches(tag, known, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise InputError(
                    f"{source}: slice '{spec.label}' uses tag '{tag}' that no utterance has; "
                    f"{hint}tags in the manifest: {', '.join(sorted(known)) or 'none'}"
                )


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
