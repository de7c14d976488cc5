"""CORAAL, the Corpus of Regional African American Language: long sociolinguistic interviews
with time-aligned transcripts, one manifest record per transcript line, read in place.

A release is eight components (``ATL``, ``DCA``, ``DCB``, ``DTA``, ``LES``, ``PRV``, ``ROC``,
``VLD``), each downloaded as ``{COMP}_metadata_{version}.txt`` (tab-separated speaker table,
one row per speaker per recording), ``{COMP}_audio_part*_{version}.tar.gz`` (WAV) and
``{COMP}_textfiles_{version}.tar.gz``. A recording is named after its primary interviewee,
``DCB_se1_ag1_f_01_1``: component, socio-economic group (``se0`` = not stratified), age group,
gender, speaker number, part. Its ``.txt`` transcript (the same stem) is tab-separated with the
header ``Line Spkr StTime Content EnTime``, one time-aligned line per row, pauses on lines of
their own (``(pause 0.52)``). The archives unpack flat; users put them in one folder or one
folder per component (or one per archive), so every file is found by name anywhere below the
source folder.

``Spkr`` says who speaks: the interviewee (the recording's own speaker id, or another speaker
the metadata lists for that file), an interviewer (``DCB_int_01``; also the file's
``Interviewer.Code``), or someone else. Only interviewees are imported unless
``-O speakers=all``. ``Content`` carries CORAAL's annotation conventions; :func:`clean_content`
strips them by the rules listed in its docstring (and in docs/datasets.md). Lines with redacted
or unintelligible speech are rejected by default: their audio holds speech the reference does
not give, so any hypothesis for it would count as an error.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, field_validator

from harness.data.importers.base import (
    Importer,
    ImporterOptions,
    Record,
    Reject,
    TagInfo,
    age_band,
    count_lines,
    gender_code,
    label,
    split_commas,
    tag_values,
)
from harness.errors import InputError

# Where each component was recorded (the CORAAL user guide's component list), as region labels.
REGIONS = {
    "ATL": "atlanta-ga",
    "DCA": "washington-dc",
    "DCB": "washington-dc",
    "DTA": "detroit-mi",
    "LES": "new-york-ny",  # Lower East Side, Manhattan
    "PRV": "princeville-nc",
    "ROC": "rochester-ny",
    "VLD": "valdosta-ga",
}
TRANSCRIPT_STEM = re.compile(r"(?P<speaker>(?P<component>[A-Z]{3})_se(?P<se>\d+)_ag\d+_(?P<g>[a-z])_\d+)_\d+")
SPEAKER_ID = re.compile(r"[A-Z]{3}_se(?P<se>\d+)_ag\d+_(?P<g>[a-z])_\d+")
METADATA_NAME = re.compile(r"(?P<component>[A-Z]{3})_metadata_.*\.txt")
NEEDED_COLUMNS = ("Spkr", "StTime", "Content", "EnTime")

# -- reference cleaning: each rule is one pattern, applied in this order by clean_content ------------------------

# Redactions: /RD-NAME-2/, /RD-ADDRESS-4/, /RD-SCHOOL-2/ ... The audio there is masked too. Hand-typed, so
# the pattern allows the slips seen in the release: a missing slash, a space after a hyphen (/RD-NAME- 4/).
REDACTION = re.compile(r"/?\bRD-\s?[A-Za-z]+(?:-\s?\d+)?-?/?")
# Speech the transcriber could not make out: /unintelligible/, /inaudible/, /?/ (any number of ?).
UNINTELLIGIBLE = re.compile(r"/\s*(?:unintelligible|inaudible|\?+)\s*/", re.IGNORECASE)
PARENTHESISED = re.compile(r"\([^()]*\)")  # (pause 0.52), and any other note in parentheses
BRACED_PAUSE = re.compile(r"\{\s*pause\s+[\d.]+\s*\}", re.IGNORECASE)  # {pause 0.17}: a pause typed with braces
ANGLED = re.compile(r"<[^<>]*>")  # non-linguistic sounds and notes: <laugh>, <cough>, <ts>, <clears throat>
UNCERTAIN = re.compile(r"/([^/]+)/")  # the transcriber's best guess at unclear words: /going to/
OVERLAP = re.compile(r"[\[\]]")  # [overlapping speech]: the words stay, the brackets go
# brackets around no words once notes are gone ([<laugh>], [ ]): a sound overlapped, no words did
EMPTY_OVERLAP = re.compile(r"\[\s*\]")
CUT_OFF = re.compile(r"(?<!\S)\S*-[,.?!]*(?!\S)")  # a word broken off (wha-), or a lone hyphen; never mm-hm
MARKUP = re.compile(r"[<>/()\[\]{}]")  # a markup character no rule above accounts for


@dataclass(frozen=True, slots=True)
class Cleaned:
    """A ``Content`` cell with CORAAL's annotations stripped, and what was found in it."""

    text: str
    untranscribed: tuple[str, ...] = ()  # redactions and unintelligible/inaudible marks, as written
    overlap: bool = False  # the line had [overlapping speech]
    uncertain: bool = False  # the line had /best-guess/ words
    leftover: str = ""  # markup characters left after every rule ('' when clean)


def find_untranscribed(content: str) -> tuple[str, ...]:
    """The redactions and unintelligible/inaudible marks in ``content``, as written."""
    return tuple(m.group().strip() for m in (*REDACTION.finditer(content), *UNINTELLIGIBLE.finditer(content)))


def strip_untranscribed(content: str) -> str:
    """``content`` without its redactions and unintelligible/inaudible marks."""
    return UNINTELLIGIBLE.sub(" ", REDACTION.sub(" ", content))


def strip_notes(content: str) -> str:
    """``content`` without ``(pause 1.23)``/``{pause 1.23}`` notes and ``<laugh>``-style sounds."""
    return ANGLED.sub(" ", PARENTHESISED.sub(" ", BRACED_PAUSE.sub(" ", content)))


def unwrap_uncertain(content: str) -> tuple[str, bool]:
    """``/best guess/`` → ``best guess``; and whether there was one."""
    text, found = UNCERTAIN.subn(r" \1 ", content)
    return text, bool(found)


def unwrap_overlap(content: str) -> tuple[str, bool]:
    """``[overlapping words]`` → ``overlapping words``; and whether brackets held words. A bracket
    may fall inside a word, where the overlap began or ended (``[els]e``): it goes without a space."""
    text, found = OVERLAP.subn("", EMPTY_OVERLAP.sub(" ", content))
    return text, bool(found)


def drop_cut_offs(content: str) -> str:
    """``content`` without broken-off words (``wha-``) and lone hyphens; hyphenated words stay."""
    return CUT_OFF.sub(" ", content)


def clean_content(content: str) -> Cleaned:
    """CORAAL's ``Content`` cell as a reference transcript. The rules, in order:

    1. redactions ``/RD-NAME-2/`` and ``/unintelligible/``, ``/inaudible/``, ``/?/`` are removed
       (and reported in ``untranscribed``: the caller decides whether the line can be scored);
    2. ``(pause 0.52)``, any other parenthesised note, and a pause typed in braces ``{pause 0.17}``
       are removed;
    3. ``<laugh>``, ``<cough>``, ``<ts>`` and any other angle-bracketed sound or note are removed;
    4. ``/best guess/`` keeps its words, drops the slashes (``uncertain``);
    5. ``[overlapping speech]`` keeps its words, drops the brackets with no space (``[els]e`` is
       ``else``); ``overlap`` only where words are left inside them (``[<laugh>]`` is no overlap);
    6. broken-off words ``wha-`` and lone hyphens are removed (``mm-hm``, ``twenty-two`` stay);
    7. runs of spaces become one. Words, spelling, capitals and punctuation are otherwise kept as
       transcribed (``ain't``, ``finna``, ``gonna``): normalisation is the scorer's job.

    A markup character still left after these (an unclosed ``<laugh``) is reported in
    ``leftover`` rather than guessed at.
    """
    untranscribed = find_untranscribed(content)
    text = strip_notes(strip_untranscribed(content))
    text, uncertain = unwrap_uncertain(text)
    text, overlap = unwrap_overlap(text)
    text = " ".join(drop_cut_offs(text).split())
    leftover = "".join(MARKUP.findall(text))
    return Cleaned(text, untranscribed, overlap, uncertain, leftover)


# -- speakers ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recording:
    """What the metadata says about one recording: its interviewees' tags and its interviewer."""

    interviewees: dict[str, dict[str, str]]  # Spkr → demographic tags
    interviewer: str = ""  # Interviewer.Code
    interviewer_tags: tuple[tuple[str, str], ...] = ()


def speaker_role(speaker: str, stem: str, recording: Recording | None) -> str:
    """``interviewee``, ``interviewer`` or ``other`` (e.g. a bystander on a miscellaneous tier)."""
    if "_int_" in speaker.casefold() or (recording is not None and speaker == recording.interviewer):
        return "interviewer"
    if stem.startswith(f"{speaker}_") or (recording is not None and speaker in recording.interviewees):
        return "interviewee"
    return "other"


def code_tags(speaker: str) -> dict[str, str]:
    """Gender and socio-economic group from an interviewee id's codes (``DCB_se1_ag1_f_01``);
    ``se0`` marks a component not stratified by socio-economic group, so it gives no tag."""
    match = SPEAKER_ID.fullmatch(speaker)
    if match is None:
        return {}
    tags = {"gender": gender_code(match["g"]) or ""}
    if int(match["se"]) > 0:
        tags["sec_group"] = str(int(match["se"]))
    return tag_values(tags)


def interviewee_tags(row: dict[str, str]) -> dict[str, str]:
    """Demographic tags from one metadata row (columns vary by component; absent ones give no tag)."""
    age = (row.get("Age") or "").strip()
    return tag_values(
        {
            "gender": label(row.get("Gender") or ""),
            "age": age,
            "age_band": age_band(age) if age else None,
            "age_group": row.get("Age.Group"),
            "education": label(row.get("Edu.Group") or ""),
            "interview_year": row.get("Year.of.Interview"),
        }
    )


def interviewer_tags(row: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The file's interviewer as the metadata describes them (given for ``speakers=all``)."""
    return tuple(
        tag_values(
            {
                "gender": label(row.get("Interviewer.Gender") or ""),
                "age_group": row.get("Interviewer.Age"),
                "ethnicity": label(row.get("Interviewer.Ethnicity") or ""),
                "interview_year": row.get("Year.of.Interview"),
            }
        ).items()
    )


def read_metadata(path: Path, into: dict[str, Recording]) -> None:
    """Add one component's speaker table to ``into`` (recording stem → :class:`Recording`)."""
    # errors="replace": only short ASCII cells are used, and a stray byte in 'Notes' must not stop an import
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if reader.fieldnames is None or not {"CORAAL.Spkr", "CORAAL.File"} <= set(reader.fieldnames):
            raise InputError(f"{path}: no CORAAL.Spkr and CORAAL.File columns; is this a CORAAL metadata file?")
        for row in reader:
            stem, speaker = (row.get("CORAAL.File") or "").strip(), (row.get("CORAAL.Spkr") or "").strip()
            if not stem or not speaker:
                continue
            known = into.get(stem) or Recording({}, (row.get("Interviewer.Code") or "").strip(), interviewer_tags(row))
            known.interviewees[speaker] = interviewee_tags(row)
            into[stem] = known


# -- the importer -----------------------------------------------------------------------------------------------


def _components(value: object) -> object:
    value = split_commas(value)
    return tuple(part.upper() for part in value) if isinstance(value, tuple) else value


class CoraalOptions(ImporterOptions):
    speakers: Literal["interviewees", "all"] = Field(
        "interviewees", description="all: also interviewer and other speakers' lines, tagged by role"
    )
    untranscribed: Literal["reject", "strip"] = Field(
        "reject", description="strip: keep lines with redactions or /unintelligible/, the marks removed"
    )
    overlap: Literal["keep", "reject"] = Field("keep", description="reject: drop lines with [overlapping speech]")
    uncertain: Literal["keep", "reject"] = Field("keep", description="reject: drop lines with /best-guess/ words")
    components: Annotated[tuple[str, ...], BeforeValidator(_components)] = Field(
        (), description="only these components, e.g. DCA,DCB (default: all found)"
    )

    @field_validator("components")
    @classmethod
    def _three_letters(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for code in value:
            if not re.fullmatch(r"[A-Z]{3}", code):
                raise ValueError(f"'{code}' is not a CORAAL component code such as DCB, PRV or ATL")
        return value


class CoraalImporter(Importer):
    name = "coraal"
    description = "CORAAL (Corpus of Regional African American Language): interview transcripts, one record a line"
    homepage = "https://oraal.github.io/coraal"
    licence = "CC BY-NC-SA 4.0"
    Options = CoraalOptions
    tags: ClassVar = {
        "dialect": TagInfo("'aal' (African American Language) on interviewee lines; none on interviewers'"),
        "component": TagInfo("CORAAL component code (ATL, DCA, DCB, DTA, LES, PRV, ROC, VLD)"),
        "region": TagInfo("where the component was recorded, as a label (washington-dc, princeville-nc, ...)"),
        "role": TagInfo("interviewee, interviewer or other, from the Spkr id and the metadata"),
        "gender": TagInfo("metadata 'Gender' (else the id's f/m code), corpus-assigned", demographic=True),
        "age": TagInfo("age in years at the interview (metadata 'Age'), corpus-assigned", demographic=True),
        "age_band": TagInfo("ten-year band of 'age'", demographic=True),
        "age_group": TagInfo(
            "metadata 'Age.Group' verbatim: the component's own bracket (ranges differ by component)", demographic=True
        ),
        "sec_group": TagInfo("socio-economic group from the id's se code (1-3; se0 gives no tag)", demographic=True),
        "education": TagInfo("metadata 'Edu.Group', as a label", demographic=True),
        "ethnicity": TagInfo("interviewer lines only: metadata 'Interviewer.Ethnicity', as a label", demographic=True),
        "interview_year": TagInfo("metadata 'Year.of.Interview'"),
        "overlap": TagInfo("'yes' where the line had [overlapping speech] (the words are kept)"),
        "uncertain": TagInfo("'yes' where the line had /best-guess/ words (the words are kept)"),
    }

    def __init__(self, source: Path, options: ImporterOptions, split: str | None = None) -> None:
        super().__init__(source, options, split)
        assert isinstance(options, CoraalOptions)
        self.opts = options
        self.transcripts = self._transcripts()
        self.metadata_files = sorted(
            path
            for path in source.rglob("*_metadata_*.txt")
            if (m := METADATA_NAME.fullmatch(path.name)) and self._wanted(m["component"])
        )

    def _wanted(self, component: str) -> bool:
        return not self.opts.components or component in self.opts.components

    def _transcripts(self) -> list[Path]:
        found: dict[str, Path] = {}
        for path in sorted(self.source.rglob("*.txt")):
            match = TRANSCRIPT_STEM.fullmatch(path.stem)
            if match is None or not self._wanted(match["component"]):
                continue
            if path.stem in found:
                raise InputError(f"{path}: a second transcript {path.name} (also {found[path.stem]}); remove one copy")
            found[path.stem] = path
        if not found:
            wanted = ",".join(self.opts.components) or "{COMP}"
            raise InputError(
                f"{self.source}: no CORAAL transcripts ({wanted}_se*_ag*_*.txt); "
                f"unpack the {wanted}_textfiles_*.tar.gz archives into this folder"
            )
        missing = sorted(set(self.opts.components) - {stem[:3] for stem in found})
        if missing:
            raise InputError(
                f"{self.source}: no transcripts for component(s) {', '.join(missing)}; check -O components"
            )
        return sorted(found.values(), key=lambda p: p.stem)

    def estimate(self) -> int:
        return sum(max(count_lines(path) - 1, 0) for path in self.transcripts)

    def rows(self) -> Iterator[Record | Reject]:
        recordings: dict[str, Recording] = {}
        for path in self.metadata_files:  # sorted by name: a later version's row replaces an earlier one
            read_metadata(path, recordings)
        audio = self._audio_index()
        for transcript in self.transcripts:
            wav = audio.get(transcript.stem, transcript.with_suffix(".wav"))  # absent: the writer rejects it
            yield from self._lines(transcript, wav, recordings.get(transcript.stem))

    def _audio_index(self) -> dict[str, Path]:
        """Recording stem → WAV, found anywhere below the source (the audio archives unpack apart)."""
        index: dict[str, Path] = {}
        for path in sorted(self.source.rglob("*")):
            if path.suffix.lower() == ".wav" and TRANSCRIPT_STEM.fullmatch(path.stem):
                index.setdefault(path.stem, path)
        return index

    def _lines(self, transcript: Path, wav: Path, recording: Recording | None) -> Iterator[Record | Reject]:
        stem = transcript.stem
        component = stem[:3]  # TRANSCRIPT_STEM matched: three capitals, then '_'
        with transcript.open("rb") as handle:
            header = handle.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n").split("\t")
            column = {name.strip(): i for i, name in enumerate(header)}
            for needed in NEEDED_COLUMNS:
                if needed not in column:
                    raise InputError(f"{transcript}: no '{needed}' column; expected the header {' '.join(header)}")
            for number, raw in enumerate(handle, start=2):
                where = self.where(transcript, number)
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    yield Reject("not UTF-8", where, None, f"byte {exc.start}: {raw[:60]!r}")
                    continue
                if not line.strip():
                    continue
                cells = line.split("\t")
                while len(cells) > len(header) and not cells[-1].strip():
                    cells.pop()  # a trailing tab is no extra column
                yield self._line(cells, column, len(header), stem, component, wav, recording, where)

    def _line(
        self,
        cells: list[str],
        column: dict[str, int],
        width: int,
        stem: str,
        component: str,
        wav: Path,
        recording: Recording | None,
        where: str,
    ) -> Record | Reject:
        number = cells[column["Line"]].strip() if "Line" in column and len(cells) > column["Line"] else ""
        uid = f"{stem}-{int(number):04d}" if number.isdigit() else f"{stem}-{where.rsplit(':', 1)[1]}"
        if len(cells) != width:
            return Reject("malformed row", where, uid, f"{len(cells)} cells, the header has {width}")
        speaker = cells[column["Spkr"]].strip()
        content = cells[column["Content"]]
        try:
            start, end = float(cells[column["StTime"]]), float(cells[column["EnTime"]])
        except ValueError:
            detail = f"StTime {cells[column['StTime']]!r}, EnTime {cells[column['EnTime']]!r}"
            return Reject("bad timestamps", where, uid, detail)
        if not speaker:
            return Reject("malformed row", where, uid, "empty Spkr")
        role = speaker_role(speaker, stem, recording)
        if role != "interviewee" and self.opts.speakers == "interviewees":
            reason = "interviewer turn" if role == "interviewer" else "not an interviewee"
            return Reject(reason, where, uid, f"{speaker}: {content}")
        cleaned = clean_content(content)
        if cleaned.untranscribed and self.opts.untranscribed == "reject":
            return Reject("redacted or unintelligible speech", where, uid, content)
        if cleaned.leftover:
            return Reject("unparsed annotation", where, uid, f"{cleaned.leftover!r} left in: {content}")
        if cleaned.overlap and self.opts.overlap == "reject":
            return Reject("overlapping speech", where, uid, content)
        if cleaned.uncertain and self.opts.uncertain == "reject":
            return Reject("uncertain transcription", where, uid, content)
        if not cleaned.text:
            return Reject("no speech after stripping annotations", where, uid, content)
        return Record(
            id=uid,
            audio=wav,
            text=cleaned.text,
            speaker=speaker,
            tags=self._tags(speaker, role, component, recording, cleaned),
            offset=start,
            duration=end - start,
            source=where,
        )

    @staticmethod
    def _tags(speaker: str, role: str, component: str, recording: Recording | None, cleaned: Cleaned) -> dict[str, str]:
        tags = {"component": component, "region": REGIONS.get(component, ""), "role": role}
        if role == "interviewee":
            tags["dialect"] = "aal"
            tags |= code_tags(speaker)
            if recording is not None:
                tags |= recording.interviewees.get(speaker, {})
        elif role == "interviewer" and recording is not None and speaker == recording.interviewer:
            tags |= dict(recording.interviewer_tags)
        tags |= {"overlap": "yes" if cleaned.overlap else "", "uncertain": "yes" if cleaned.uncertain else ""}
        return tag_values(tags)
