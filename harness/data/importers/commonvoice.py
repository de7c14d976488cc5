"""Mozilla Common Voice: a release's locale folder (``cv-corpus-*/en``) of TSVs plus ``clips/``.

Each split TSV (``test.tsv``, ``validated.tsv``, ...) has one row per clip. Common Voice writes
them without quoting, so a sentence may hold a bare ``"``: the rows are read with quoting off.
Columns changed across releases (``accent`` became ``accents``; ``variant``, ``sentence_id``,
``sentence_domain`` arrived later); columns are found by name, so every release reads.
``accents`` is free text typed by the speaker, possibly several: joined by ``,`` in releases 8
to 16, by ``|`` in some later ones (a listed accent may hold commas in parentheses: "India and
South Asia (India, Pakistan, Sri Lanka)"). ``accent_raw`` keeps the cell verbatim and ``accent``
is the first accent as a label (``--map`` narrows the labels to a small set); an empty cell gives
no accent tag at all, never an empty group. Releases up to 4 have no ``locale`` column: the
locale is the folder's name (``cv-corpus-4-2019-12-10/cy``). Release 6.1 writes an empty
``segment`` as ``''``: a cell of quote marks only is empty.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from harness.data.importers.base import (
    Importer,
    ImporterOptions,
    Record,
    Reject,
    TagInfo,
    count_lines,
    label,
    tag_values,
)
from harness.errors import InputError

csv.field_size_limit(sys.maxsize)  # a sentence is never near the limit, but a corrupt row may be
# Common Voice's age choices (its own spelling, "fourties" included) as the ten-year bands every importer writes;
# "teens" is 10-19 (the site asks for 13 and over), "nineties" covers 90 and over.
AGE_BANDS = {
    "teens": "10-19",
    "twenties": "20-29",
    "thirties": "30-39",
    "fourties": "40-49",
    "forties": "40-49",
    "fifties": "50-59",
    "sixties": "60-69",
    "seventies": "70-79",
    "eighties": "80-89",
    "nineties": "90-99",
}
LOCALE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")  # Common Voice's locale folders: en, cy, pt-BR, rm-sursilv


class CommonVoiceImporter(Importer):
    name = "commonvoice"
    description = "Mozilla Common Voice release: a locale folder of split TSVs and clips/ (MP3)"
    homepage = "https://commonvoice.mozilla.org/datasets"
    licence = "CC0-1.0 (audio and sentences)"
    splits = ("test", "dev", "train", "validated", "other", "invalidated")
    tags: ClassVar = {
        "accent": TagInfo("first accent the speaker typed, as a label (lower case, hyphens)"),
        "accent_raw": TagInfo("the speaker's free-text 'accents' entry, verbatim (',' or '|' separates several)"),
        "variant": TagInfo("language variant the speaker chose from Common Voice's list"),
        "locale": TagInfo("the release's locale code"),
        "age_band": TagInfo(
            "ten-year band of the profile's age (twenties -> 20-29), as every importer writes it",
            demographic=True,
            self_reported=True,
        ),
        "age_raw": TagInfo("the profile's age band, verbatim (Common Voice has no age in years)", demographic=True),
        "gender": TagInfo("gender from the speaker's profile, verbatim", demographic=True, self_reported=True),
        "segment": TagInfo("Common Voice segment the clip belongs to (e.g. Benchmark)"),
        "domain": TagInfo("sentence domain(s) from 'sentence_domain'"),
    }

    def __init__(self, source: Path, options: ImporterOptions, split: str | None = None) -> None:
        super().__init__(source, options, split)
        self.table = self.require(f"{self.split}.tsv")
        self.clips = self.source / "clips"
        self.folder_locale = self.source.resolve().name  # the locale where the TSV has no column (releases <= 4)

    def estimate(self) -> int:
        return max(count_lines(self.table) - 1, 0)

    def rows(self) -> Iterator[Record | Reject]:
        with self.table.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader, None)
            if header is None:
                return
            column = {name: i for i, name in enumerate(header)}
            for needed in ("client_id", "path", "sentence"):
                if needed not in column:
                    raise InputError(f"{self.table}: no '{needed}' column; is this a Common Voice split TSV?")
            if "locale" not in column and not LOCALE.fullmatch(self.folder_locale):
                raise InputError(
                    f"{self.table}: no 'locale' column (a release before v5) and the folder name "
                    f"'{self.folder_locale}' is not a locale code; pass the locale folder as the release names it "
                    "(e.g. .../cy)"
                )
            table = self.where(self.table)
            for line, cells in enumerate(reader, start=2):
                where = f"{table}:{line}"
                if len(cells) != len(header):
                    detail = f"{len(cells)} cells, the header has {len(header)}"
                    yield Reject("malformed row", where, cells[column["path"]] if len(cells) > 1 else None, detail)
                    continue
                yield self._record(dict(zip(header, cells, strict=True)), where)

    def _record(self, row: dict[str, str], where: str) -> Record:
        clip = row["path"]
        accents = _cell(row.get("accents", row.get("accent", "")))
        locale = _cell(row["locale"]) if "locale" in row else self.folder_locale
        tags = tag_values(
            {
                "accent": label(first_accent(accents)),
                "accent_raw": accents,
                "variant": _cell(row.get("variant")),
                "locale": locale,
                "age_band": AGE_BANDS.get(_cell(row.get("age"))),
                "age_raw": _cell(row.get("age")),
                "gender": _cell(row.get("gender")),
                "segment": _cell(row.get("segment")),
                "domain": _cell(row.get("sentence_domain")),
            }
        )
        return Record(
            id=clip.rsplit("/", 1)[-1].rsplit(".", 1)[0],  # the clip's stem, without pathlib's cost per row
            audio=self.clips / clip,
            text=row["sentence"],
            speaker=row["client_id"].strip() or None,
            tags=tags,
            language=locale.split("-")[0].lower() or "en",
            source=where,
        )


def _cell(value: str | None) -> str:
    """A cell stripped; one of quote marks only (6.1's ``''`` segment) is empty, as is a missing column."""
    text = (value or "").strip()
    return "" if not text.strip("'\"") else text


def first_accent(accents: str) -> str:
    """The first accent of a cell listing several: split at ``|``, or at a comma outside parentheses
    ("India and South Asia (India, Pakistan, Sri Lanka),Welsh English" → the first of the two)."""
    depth = 0
    for index, char in enumerate(accents):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "|" or (char == "," and depth <= 0):
            return accents[:index].strip()
    return accents.strip()
