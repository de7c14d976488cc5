"""Speech Accent Archive (George Mason University), as the Kaggle release ``speech-accent-archive``.

The release folder holds ``speakers_all.csv`` (one row per speaker), ``reading-passage.txt``
and the MP3s, as ``recordings/recordings/<filename>.mp3`` when Kaggle's archive is unpacked
(``recordings/<filename>.mp3`` also reads). Every speaker reads the same 69-word paragraph once,
so each row is one utterance and its reference is that paragraph: ``reading-passage.txt``,
whitespace collapsed, where present (it wraps lines and double-spaces sentences), else the
built-in :data:`PASSAGE`.

``speakers_all.csv`` quirks, all in the real file:

* its header ends ``file_missing?,,,`` and every row ``,,,``: three unnamed empty columns, which
  are ignored (one row holds a stray ``no`` there). A row shorter than the named columns, or
  longer than the header (an unquoted comma in ``birthplace``), is a malformed row.
* 32 rows have ``file_missing?`` TRUE and no recording; most of their filenames lack the number
  (six rows are all ``haitian``). They are rejected as ``flagged file_missing``.
* ages are mostly whole numbers with a few halves (``15.5``; ``age_onset`` ``2.5``); a copy
  re-saved by pandas writes ``27.0`` and ``False``: both read, ``27.0`` becomes ``27``.
* four ``synthesized`` rows are text-to-speech voices with age 0 and no birthplace: rejected
  unless ``-O include_synthesized=true``. Age 0 is that placeholder, so it gives no age tags.
* ``sex`` is ``male`` or ``female``, once misspelt ``famale`` (read as ``female``).
* ``country`` is the last comma-separated part of ``birthplace`` on every row seen (so
  ``"vientiane, laos, "`` has none): the country of birth, not of residence.

A recording on disk that no row lists is reported after the rows (``not in speakers_all.csv``):
that needs one listing of the recordings folder and the set of listed names (about 2,200).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from harness.data.importers.base import (
    Importer,
    ImporterOptions,
    Record,
    Reject,
    TagInfo,
    age_band,
    count_lines,
    label,
    tag_values,
)
from harness.errors import InputError

TABLE = "speakers_all.csv"
PASSAGE_FILE = "reading-passage.txt"
PASSAGE = (
    "Please call Stella. Ask her to bring these things with her from the store: Six spoons of fresh snow peas, "
    "five thick slabs of blue cheese, and maybe a snack for her brother Bob. We also need a small plastic snake "
    "and a big toy frog for the kids. She can scoop these things into three red bags, and we will go meet her "
    "Wednesday at the train station."
)
SEX_TYPOS = {"famale": "female"}  # the one misspelling in the release
TRUE_CELLS = frozenset({"true", "1", "yes"})


class SpeechAccentArchiveOptions(ImporterOptions):
    include_synthesized: bool = Field(
        default=False, description="keep the text-to-speech 'synthesized' rows (l1 synthesized, no age tags)"
    )


class SpeechAccentArchiveImporter(Importer):
    name = "speech-accent-archive"
    description = "Speech Accent Archive (GMU), Kaggle release: speakers_all.csv, one read paragraph per speaker (MP3)"
    homepage = "https://accent.gmu.edu"
    licence = "CC BY-NC-SA 2.0 (as stated for the Kaggle release)"
    Options = SpeechAccentArchiveOptions
    tags: ClassVar = {
        "l1": TagInfo("native language, as a label (lower case, hyphens)"),
        "l1_raw": TagInfo("the 'native_language' cell, verbatim"),
        "region": TagInfo("country of birth ('country', the end of 'birthplace'), as a label"),
        "region_raw": TagInfo("the 'country' cell, verbatim"),
        "birthplace": TagInfo("place of birth as given ('city, region, country'), verbatim"),
        "age": TagInfo("age in years when recorded", demographic=True, self_reported=True),
        "age_band": TagInfo("ten-year band of 'age'", demographic=True, self_reported=True),
        "english_onset_age": TagInfo("age in years when the speaker began learning English (0: from birth)"),
        "gender": TagInfo("'sex' column (male/female); how it was collected is not documented", demographic=True),
    }

    def __init__(self, source: Path, options: ImporterOptions, split: str | None = None) -> None:
        super().__init__(source, options, split)
        self.table = self.require(TABLE)
        self.recordings = self._recordings_folder()
        self.text = self._passage()

    def _recordings_folder(self) -> Path:
        nested = self.source / "recordings" / "recordings"  # Kaggle's zip unpacks one level deeper
        if nested.is_dir():
            return nested
        if (self.source / "recordings").is_dir():
            return self.source / "recordings"
        if (self.source / "recordings.zip").is_file():
            raise InputError(f"{self.source}: recordings.zip is not unpacked; unzip it here (it makes recordings/)")
        raise InputError(f"{self.source}: no recordings/ folder of MP3s; unpack the release's recordings here")

    def _passage(self) -> str:
        path = self.source / PASSAGE_FILE
        if not path.is_file():
            return PASSAGE
        text = " ".join(path.read_text(encoding="utf-8-sig").split())
        if not text:
            raise InputError(f"{path}: empty; restore the release's copy or delete it to use the built-in passage")
        return text

    def estimate(self) -> int:
        return max(count_lines(self.table) - 1, 0)

    def rows(self) -> Iterator[Record | Reject]:
        listed: set[str] = set()
        yield from self._table_rows(listed)
        yield from self._unlisted(listed)

    def _table_rows(self, listed: set[str]) -> Iterator[Record | Reject]:
        seen: set[str] = set()
        with self.table.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return
            header = [name.strip() for name in header]
            if "filename" not in header:
                raise InputError(f"{self.table}: no 'filename' column; is this the Speech Accent Archive's {TABLE}?")
            named = max(i for i, name in enumerate(header) if name) + 1
            for cells in reader:
                if not any(cell.strip() for cell in cells):
                    continue  # a blank line
                where = self.where(self.table, reader.line_num)
                row = {name: cell.strip() for name, cell in zip(header, cells, strict=False) if name}
                filename = row.get("filename", "")
                if filename:
                    listed.add(filename)
                if not named <= len(cells) <= len(header):
                    detail = f"{len(cells)} cells; the header names {named} columns of {len(header)}"
                    yield Reject("malformed row", where, filename or None, detail)
                elif row.get("file_missing?", "").lower() in TRUE_CELLS:
                    yield Reject("flagged file_missing", where, filename, "file_missing? is TRUE: no recording")
                elif label(row.get("native_language", "")) == "synthesized" and not self.options.include_synthesized:
                    yield Reject("synthesized voice", where, filename, "text-to-speech, not a speaker")
                elif filename in seen:
                    yield Reject("duplicate filename", where, filename, "an earlier row has this filename")
                else:
                    seen.add(filename)
                    yield self._record(row, where)

    def _record(self, row: dict[str, str], where: str) -> Record:
        filename = row["filename"]
        age = _number(row.get("age", ""))
        placeholder = age == "0"  # the synthesized voices' age; no speaker is 0
        sex = row.get("sex", "").lower()
        tags = tag_values(
            {
                "l1": label(row.get("native_language", "")),
                "l1_raw": row.get("native_language"),
                "region": label(row.get("country", "")),
                "region_raw": row.get("country"),
                "birthplace": row.get("birthplace"),
                "age": None if placeholder else age,
                "age_band": None if placeholder or age is None else age_band(age),
                "english_onset_age": None if placeholder else _number(row.get("age_onset", "")),
                "gender": SEX_TYPOS.get(sex, sex),
            }
        )
        return Record(
            id=filename,
            audio=self.recordings / f"{filename}.mp3",
            text=self.text,
            speaker=row.get("speakerid") or filename,  # one recording per speaker: both name the same person
            tags=tags,
            source=where,
        )

    def _unlisted(self, listed: set[str]) -> Iterator[Reject]:
        """Recordings on disk that no row names: audio with no speaker data, reported so it is not lost."""
        found = sorted(p for p in self.recordings.iterdir() if p.suffix.lower() == ".mp3" and p.is_file())
        for path in found:
            if path.stem not in listed:
                yield Reject(f"not in {TABLE}", self.where(path), path.stem, f"no {TABLE} row names {path.name}")


def _number(text: str) -> str | None:
    """A numeric cell as written plainly (``27.0`` → ``27``, ``2.5`` stays); other text verbatim, '' as None."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value) or value < 0:
        return text
    return str(int(value)) if value.is_integer() else f"{value:g}"
