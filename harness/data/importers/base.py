"""What every importer yields, and the small helpers the corpus readers share.

An importer turns one corpus layout into manifest records. It streams: :meth:`Importer.rows`
yields one :class:`Record` or :class:`Reject` at a time and holds only per-speaker or
per-recording tables, never the utterances, so a release with millions of rows imports in
constant memory. Checks common to every corpus (audio exists, transcript not empty) are the
writer's, so an importer only reports what its format alone can tell (a missing transcript
file, a speaker absent from the speaker table).
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from harness.errors import InputError


class ImporterOptions(BaseModel):
    """Base for each importer's ``-O key=value`` options; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Record:
    """One utterance for the manifest. ``audio`` is a path as found (absolute or relative to
    the current directory); the writer makes it relative to the manifest where it can."""

    id: str
    audio: Path
    text: str
    speaker: str | None
    tags: Mapping[str, str] = field(default_factory=dict)
    offset: float | None = None  # seconds into ``audio``: a segment of a long recording
    duration: float | None = None
    language: str = "en"
    source: str = ""  # "file:line" of the row it came from, for the rejects file


@dataclass(frozen=True, slots=True)
class Reject:
    """A source row that cannot become an utterance, and why; it is counted and written out."""

    reason: str  # short and stable: the summary counts rows per reason
    source: str  # "file:line" (relative to the source folder)
    id: str | None = None
    detail: str = ""  # the specifics: which file is missing, what the text was


@dataclass(frozen=True, slots=True)
class TagInfo:
    """A tag an importer yields, for ``asrfair importers`` and the dataset card."""

    description: str
    demographic: bool = False
    self_reported: bool = False  # only where the corpus documents that speakers gave it themselves


class Importer(ABC):
    """One corpus format. Subclasses set the class attributes and implement :meth:`rows`."""

    name: ClassVar[str]
    description: ClassVar[str]
    homepage: ClassVar[str] = ""
    licence: ClassVar[str] = ""
    tags: ClassVar[Mapping[str, TagInfo]] = {}
    splits: ClassVar[tuple[str, ...]] = ()  # accepted --split values, the default first; () = no splits
    free_split: ClassVar[str] = ""  # where set, --split takes any value, and this says what it picks
    Options: ClassVar[type[ImporterOptions]] = ImporterOptions

    def __init__(self, source: Path, options: ImporterOptions, split: str | None = None) -> None:
        """Check the layout (raise :class:`InputError` naming the missing file and the fix)."""
        if not source.is_dir():
            raise InputError(f"{source}: not a folder; pass the corpus folder that holds the {self.name} files")
        self.source = source
        self.options = options
        self.split = self._split(split)

    def _split(self, split: str | None) -> str | None:
        if split is None:
            return self.splits[0] if self.splits else None
        if self.free_split:
            return split
        if not self.splits:
            raise InputError(f"--split {split}: {self.name} has no splits; leave --split out")
        if split not in self.splits:
            raise InputError(f"--split {split}: {self.name} splits are {', '.join(self.splits)}")
        return split

    def estimate(self) -> int | None:
        """About how many rows :meth:`rows` will yield (for the progress bar), if cheap to know."""
        return None

    def set_output(self, manifest: Path) -> None:  # noqa: B027  (most importers write nothing themselves)
        """Where the manifest goes, told before :meth:`rows`: an importer that writes audio (``hf``) puts it beside."""

    @abstractmethod
    def rows(self) -> Iterator[Record | Reject]:
        """Every source row, in source order, as a record or a reject."""

    def where(self, path: Path, line: int | None = None) -> str:
        """``path`` relative to the source folder, with the line: how rejects name a row."""
        try:
            shown = path.relative_to(self.source).as_posix()
        except ValueError:
            shown = str(path)
        return f"{shown}:{line}" if line is not None else shown

    def require(self, *names: str) -> Path:
        """The first of ``names`` present in the source folder, or an error naming them all."""
        for name in names:
            if (self.source / name).exists():
                return self.source / name
        wanted = " or ".join(names)
        raise InputError(f"{self.source}: no {wanted}; pass the folder of a {self.name} release (see docs/datasets.md)")


def label(text: str) -> str:
    """A free-text value as a tag label: NFKC, lower case, runs of spaces and punctuation as one
    hyphen (``"United States English"`` → ``united-states-english``); '' if nothing is left."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\W_]+", "-", folded).strip("-")


GENDER_CODES = {"f": "female", "m": "male"}


def gender_code(text: str) -> str | None:
    """``female``/``male`` for a corpus's one-letter code (``F``, ``m``); None for anything else,
    which each importer keeps in its own way (verbatim, or as a label)."""
    return GENDER_CODES.get(text.lower())


def age_band(years: str) -> str | None:
    """Ten-year band of an age in years (``"23"`` → ``20-29``); None where it is not a number."""
    try:
        age = int(float(years))
    except ValueError:
        return None
    if age < 0 or age > 130:
        return None
    low = age // 10 * 10
    return f"{low}-{low + 9}"


def count_lines(path: Path, chunk: int = 1 << 20) -> int:
    """Newlines in ``path``, read in chunks (constant memory; about 1 s per GB)."""
    total = 0
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            total += block.count(b"\n")
    return total


def tag_values(values: Mapping[str, str | None]) -> dict[str, str]:
    """The non-empty values, stripped: an empty cell means "not given", never a group of its own."""
    return {key: value.strip() for key, value in values.items() if value is not None and value.strip()}


def split_commas(value: object) -> object:
    """``-O mics=mic1,mic2`` arrives as text: a comma list becomes a tuple; other values pass."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value
