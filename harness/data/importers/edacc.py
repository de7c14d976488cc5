"""The Edinburgh International Accents of English Corpus (EdAcc v1.0): ``edacc_v1.0/``.

The release holds ``dev/`` and ``test/``, each a Kaldi-style folder (``text``, ``segments``,
``utt2spk``, plus ``stm``, ``stm.filt``, ``conv.list`` and ``company.ctm`` for scoring) but no
``wav.scp``: ``segments`` names a recording and its audio is ``data/<recording>.wav`` (whole
video-call conversations, 32 kHz mono; segments are read in place). Conversations split in parts
are ``EDACC-C35_P1``, ``EDACC-C35_P2``; the speakers (``EDACC-C35-A``) are those of the whole
conversation. ``text``/``utt2spk``/``segments`` are walked in step with the kaldi importer's
merge join (:func:`harness.data.importers.kaldi.utterances`), so memory stays constant.

``linguistic_background.csv`` has one row per participant (``PARTICIPANT_ID`` = the utt2spk
speaker) of free-text questionnaire answers the speakers gave themselves. Its columns are found
by case-insensitive phrases of their headers (see ``_COLUMNS``): the accent question ("How would
you describe your accent in English? ...") gives ``accent_raw`` verbatim and ``accent`` as a
label; gender, year of birth (→ an approximate ``age``), ethnic background and education are
read the same way; a first-language column, if the file has one, gives ``l1``/``l1_raw``.

Transcripts use the Babel tag set (``<laugh>``, ``<no-speech>``, ``<overlap>``...). Every
``<...>`` token is removed from the reference; a segment left with no words is rejected, as is
one the ``stm`` marks ``IGNORE_TIME_SEGMENT_IN_SCORING`` (the read passage, left out of EdAcc's
own scoring). ``<overlap>`` and ``<foreign>`` stand for speech that was not transcribed
(cross-talk, another language): such a segment is kept, tagged ``untranscribed``, unless
``-O untranscribed=reject``.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

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
from harness.data.importers.kaldi import Utterance, utterances
from harness.errors import InputError

RELEASE = "edacc_v1.0"
BACKGROUND = "linguistic_background.csv"
IGNORE = "IGNORE_TIME_SEGMENT_IN_SCORING"
IGNORED = "ignored in scoring"  # the reject reason
READ_PASSAGE = "read speech, left out of EdAcc's scoring"
TAG = re.compile(r"<([^<>\s]*)>")
UNTRANSCRIBED = ("foreign", "overlap")  # speech that is there but has no words in the reference
NOT_GIVEN = {"", "na", "n/a"}
PARTICIPANT = "participant_id"
# tag → phrases, one of which the (normalised) header holds; the real headers are in docs/datasets.md
_COLUMNS: dict[str, tuple[str, ...]] = {
    "accent": ("describe your accent",),
    "l1": ("first language", "native language", "mother tongue"),
    "gender": ("your gender",),
    "birth_year": ("year of birth",),
    "ethnicity": ("ethnic background",),
    "education": ("level of education",),
}


class EdAccOptions(ImporterOptions):
    untranscribed: Literal["keep", "reject"] = Field(
        "keep", description="reject: drop segments holding <overlap> or <foreign> (speech left untranscribed)"
    )
    survey_year: int = Field(2022, description="age = this year minus the year of birth (no recording date is known)")
    l1_column: str | None = Field(None, description="exact linguistic_background.csv header of the first language")


class EdAccImporter(Importer):
    name = "edacc"
    description = "Edinburgh International Accents of English Corpus (EdAcc v1.0): dyadic video-call conversations"
    homepage = "https://groups.inf.ed.ac.uk/edacc/"
    licence = "CC-BY-SA-4.0"
    splits = ("test", "dev")
    Options = EdAccOptions
    options: EdAccOptions
    tags: ClassVar = {
        "accent": TagInfo("self-described accent in English, as a label"),
        "accent_raw": TagInfo("the speaker's own words for their accent, verbatim"),
        "l1": TagInfo("first language, as the speaker gave it, as a label"),
        "l1_raw": TagInfo("first language as the speaker wrote it"),
        "gender": TagInfo("gender from the questionnaire, as a label", demographic=True, self_reported=True),
        "age": TagInfo("survey_year minus the year of birth given", demographic=True, self_reported=True),
        "age_band": TagInfo("ten-year band of age", demographic=True, self_reported=True),
        "ethnicity": TagInfo("ethnic background as answered, verbatim", demographic=True, self_reported=True),
        "education": TagInfo("highest level of education, verbatim", demographic=True, self_reported=True),
        "conversation": TagInfo("the conversation (recording id without its _P<n> part)"),
        "untranscribed": TagInfo("'foreign' and/or 'overlap': the segment holds speech its reference leaves out"),
    }

    def __init__(self, source: Path, options: ImporterOptions, split: str | None = None) -> None:
        super().__init__(source, options, split)
        if (source / RELEASE).is_dir() and not (source / "test").is_dir():
            self.source = source / RELEASE  # the folder the archive unpacked into, as lhotse's recipe takes it
        for name in ("text", "segments", "utt2spk", "stm"):
            self.require(f"{self.split}/{name}")
        self.background = self.require(BACKGROUND)
        self.audio = self.require("data")
        self.folder = self.source / str(self.split)

    def estimate(self) -> int:
        return count_lines(self.folder / "text")

    def rows(self) -> Iterator[Record | Reject]:
        ignored = ignored_in_scoring(self.folder / "stm")
        speakers = read_background(self.background, self.options)
        for item in utterances(self.folder, self.where):
            if isinstance(item, Reject):
                yield item
            else:
                yield self._record(item, ignored, speakers.get(item.speaker, {}))

    def _record(self, utt: Utterance, ignored: Mapping[tuple, int], speaker: Mapping[str, str]) -> Record | Reject:
        marked = ignored.get(stm_key(utt.recording, utt.speaker, utt.start, utt.end))
        if marked is not None:
            detail = f"{self.where(self.folder / 'stm', marked)} marks it {IGNORE} ({READ_PASSAGE})"
            return Reject(IGNORED, utt.source, utt.id, detail)
        ref = reference(utt.text, self.options.untranscribed)
        if ref.reject:
            return Reject(ref.reject, utt.source, utt.id, ref.detail)
        extra = {"conversation": re.sub(r"_P\d+$", "", utt.recording), "untranscribed": ",".join(ref.untranscribed)}
        return Record(
            id=utt.id,
            audio=self.audio / f"{utt.recording}.wav",
            text=ref.words,
            speaker=utt.speaker,
            tags=tag_values({**speaker, **extra}),
            offset=utt.start,
            duration=None if utt.end is None else utt.end - utt.start,
            source=utt.source,
        )


@dataclass(frozen=True, slots=True)
class Reference:
    """An EdAcc transcript as a reference: its words and the untranscribed speech it marks, or, where
    ``reject`` is set, why the segment cannot be scored (the reason and its detail)."""

    words: str
    untranscribed: tuple[str, ...] = ()
    reject: str = ""
    detail: str = ""


def reference(text: str, untranscribed: str = "keep") -> Reference:
    """EdAcc's transcript rules, for the native importer and for lhotse's EdAcc recipe output alike:
    a segment marked ``IGNORE_TIME_SEGMENT_IN_SCORING`` (the read passage) is not scored; every
    ``<...>`` tag (any case: ``<LAUGH>``, ``<no-speech>``) is removed, and a segment left with no
    words is not scored; ``<overlap>``/``<foreign>`` mark speech the reference leaves out, kept
    (and reported) unless ``untranscribed`` is ``reject``."""
    if IGNORE in text.split():
        return Reference("", reject=IGNORED, detail=f"its text is {IGNORE} ({READ_PASSAGE})")
    words, tags = strip_tags(text)
    if not words:
        return Reference("", reject="no speech", detail=f"only non-speech tags: {text.strip()}")
    found = tuple(sorted(set(tags) & set(UNTRANSCRIBED)))
    if found and untranscribed == "reject":
        shown = ", ".join(f"<{tag}>" for tag in found)
        return Reference(words, found, "untranscribed speech", f"{shown}: speech the reference leaves out")
    return Reference(words, found)


def strip_tags(text: str) -> tuple[str, list[str]]:
    """The words of ``text`` without its ``<...>`` annotation tags, and the tag names (lower case)."""
    tags = [name.lower() for name in TAG.findall(text)]
    return " ".join(TAG.sub(" ", text).split()), tags


def stm_key(recording: str, speaker: str, start: float, end: float | None) -> tuple[str, str, int, int | None]:
    """A segment as the stm names it: times to the millisecond (stm and segments print them alike)."""
    return recording, speaker, round(start * 1000), None if end is None else round(end * 1000)


def ignored_in_scoring(stm: Path) -> dict[tuple, int]:
    """stm key → line of every segment the stm marks IGNORE_TIME_SEGMENT_IN_SCORING (a few per
    conversation: only those are kept, not the stm)."""
    marked: dict[tuple, int] = {}
    with stm.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split(maxsplit=5)  # recording channel speaker start end [<labels>] words
            if len(fields) < 6 or line.startswith(";;") or IGNORE not in fields[5].split():
                continue
            try:
                key = stm_key(fields[0], fields[2], float(fields[3]), float(fields[4]))
            except ValueError:
                continue
            marked[key] = number
    return marked


def _header(text: str) -> str:
    """A header as matched: NFKC, curly quotes straight, case folded, single-spaced."""
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(text.casefold().split())


def columns(header: list[str], l1_column: str | None = None) -> dict[str, int]:
    """tag (and ``participant_id``) → index of its column: the first header holding one of its phrases."""
    names = [_header(name) for name in header]
    found: dict[str, int] = {}
    for index, name in enumerate(names):
        if name == PARTICIPANT:
            found.setdefault(PARTICIPANT, index)
        for tag, phrases in _COLUMNS.items():
            if any(phrase in name for phrase in phrases):
                found.setdefault(tag, index)
    if l1_column is not None:
        wanted = _header(l1_column)
        if wanted not in names:
            raise InputError(f"-O l1_column={l1_column}: no such column in {BACKGROUND}; copy its header exactly")
        found["l1"] = names.index(wanted)
    return found


def read_background(path: Path, options: EdAccOptions) -> dict[str, dict[str, str]]:
    """participant id → tags from the questionnaire (one row per participant: small)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        index = columns(header, options.l1_column)
        if PARTICIPANT not in index:
            raise InputError(f"{path}: no PARTICIPANT_ID column; is this EdAcc's {BACKGROUND}?")
        speakers: dict[str, dict[str, str]] = {}
        for cells in reader:
            answer = {tag: _cell(cells, column) for tag, column in index.items()}
            participant = answer.pop(PARTICIPANT)
            if participant and participant not in speakers:  # a repeated row: the first stands
                speakers[participant] = speaker_tags(answer, options.survey_year)
    return speakers


def _cell(cells: list[str], column: int) -> str:
    """An answer on one line (a form answer may hold line breaks); '' where none was given."""
    value = " ".join(cells[column].split()) if column < len(cells) else ""
    return "" if value.casefold() in NOT_GIVEN else value


def speaker_tags(answer: Mapping[str, str], survey_year: int) -> dict[str, str]:
    """One participant's answers as tags; an unanswered question gives no tag."""
    tags = {
        "accent": label(answer.get("accent", "")),
        "accent_raw": answer.get("accent"),
        "l1": label(answer.get("l1", "")),
        "l1_raw": answer.get("l1"),
        "gender": label(answer.get("gender", "")),
        "ethnicity": answer.get("ethnicity"),
        "education": answer.get("education"),
    }
    age = _age(answer.get("birth_year", ""), survey_year)
    if age is not None:
        tags["age"] = str(age)
        tags["age_band"] = age_band(str(age))
    return tag_values(tags)


def _age(birth_year: str, survey_year: int) -> int | None:
    """Age in ``survey_year`` from a free-text year of birth; None unless it is a plausible year."""
    match = re.fullmatch(r"(19|20)\d\d", birth_year.strip())
    if match is None:
        return None
    age = survey_year - int(birth_year)
    return age if 0 < age < 120 else None
