"""CSTR VCTK Corpus: ``speaker-info.txt``, ``txt/pNNN/pNNN_XXX.txt`` and one audio folder.

Two layouts are read. Release 0.92 (2019, CC BY 4.0) keeps each utterance twice, once per
microphone: ``wav48_silence_trimmed/p225/p225_001_mic1.flac`` (DPA 4035 omni) and ``_mic2.flac``
(Sennheiser MKH 800). Release 0.80 (2012, ODC-By) has one microphone, the DPA 4035, as
``wav48/p225/p225_001.wav``; that is the microphone 0.92 calls mic1, so its utterances get
``device=mic1`` and compare with 0.92's mic1 (the 0.92 files are also silence-trimmed).

``speaker-info.txt`` is whitespace-aligned, ``ID AGE GENDER ACCENTS REGION`` (0.92 adds
``COMMENTS``). The columns are not tab-separated: REGION runs to the end of the line and may be
several words; a comment is the parenthesised tail ("(mic2 files unavailable)"); 0.80 writes ids
without the ``p`` (``225``) while its folders are ``p225``. Two accents are two words
("Australian English", "NewZealand English"): an ``English`` after a non-English accent belongs
to the accent, not to the region.

Quirks: p315's transcripts were lost (audio, no ``txt/p315``): each of its utterances is
rejected as "no transcript file". p280 (and p315) have no mic2 files: with ``-O mics=mic1,mic2``
their mic2 rows are "no mic2 recording". A speaker folder that ``speaker-info.txt`` does not
list (0.92's ``s5``, unless the file has a row for it) has no demographics: its rows are
rejected as "speaker not in speaker-info.txt", or imported untagged with ``-O unlisted=keep``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, field_validator

from harness.data.importers.base import (
    Importer,
    ImporterOptions,
    Record,
    Reject,
    TagInfo,
    age_band,
    gender_code,
    label,
    split_commas,
    tag_values,
)
from harness.errors import InputError

NEW_AUDIO = "wav48_silence_trimmed"  # 0.92: <utt>_mic1.flac, <utt>_mic2.flac
OLD_AUDIO = "wav48"  # 0.80: <utt>.wav, one microphone (the DPA 4035, 0.92's mic1)
SPEAKER_INFO = "speaker-info.txt"
UNKNOWN_ACCENT = "unknown"  # p280's ACCENTS cell: no accent group, only the raw text


class VCTKOptions(ImporterOptions):
    mics: Annotated[tuple[Literal["mic1", "mic2"], ...], BeforeValidator(split_commas)] = ("mic1",)
    unlisted: Literal["reject", "keep"] = "reject"  # speaker folders speaker-info.txt does not list

    @field_validator("mics")
    @classmethod
    def _some_unique(cls, mics: tuple[str, ...]) -> tuple[str, ...]:
        if not mics:
            raise ValueError("name at least one of mic1, mic2")
        if len(set(mics)) != len(mics):
            raise ValueError("a microphone is named twice")
        return mics


@dataclass(frozen=True, slots=True)
class Speaker:
    """One row of ``speaker-info.txt``."""

    id: str
    age: str
    gender: str
    accent: str
    region: str
    comment: str


def parse_speaker_line(line: str) -> Speaker | None:
    """A ``speaker-info.txt`` row; None for a blank line, the header or a row too short to read."""
    text = line.strip()
    if not text or text.split()[0].upper() == "ID":
        return None
    comment = ""
    if "(" in text:  # 0.92's COMMENTS column: the parenthesised tail
        text, comment = text[: text.index("(")].strip(), text[text.index("(") :].strip(" ()")
    cells = text.split()
    if len(cells) < 3:
        return None
    speaker, age, gender, *rest = cells
    accent, region = (rest[0], rest[1:]) if rest else ("", [])
    if region and region[0] == "English" and accent != "English":  # "Australian  English  Sydney"
        accent, region = f"{accent} English", region[1:]
    if speaker.isdigit():  # 0.80 writes 225 for the folder p225
        speaker = f"p{speaker}"
    return Speaker(speaker, age, gender, accent, " ".join(region), comment)


def accent_label(raw: str) -> str:
    """``NorthernIrish`` → ``northern-irish``: VCTK runs words of one accent together."""
    value = label(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", raw))
    return "" if value == UNKNOWN_ACCENT else value


def _files(folder: Path) -> list[str]:
    """File names in ``folder`` ([] where it is missing): one listing per speaker, not a stat per file."""
    try:
        with os.scandir(folder) as entries:
            return [entry.name for entry in entries if entry.is_file()]
    except FileNotFoundError:
        return []


def _folders(folder: Path) -> set[str]:
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries if entry.is_dir()}
    except FileNotFoundError:
        return set()


class VCTKImporter(Importer):
    name = "vctk"
    description = "CSTR VCTK Corpus (0.92 mic1/mic2 FLAC or 0.80 wav48): read English from 110 speakers of many accents"
    homepage = "https://datashare.ed.ac.uk/handle/10283/3443"
    licence = "CC-BY-4.0 (release 0.92); ODC-By-1.0 (release 0.80)"
    tags: ClassVar = {
        "accent": TagInfo("speaker-info.txt ACCENTS as a label (NorthernIrish → northern-irish); none for Unknown"),
        "accent_raw": TagInfo("speaker-info.txt ACCENTS, verbatim"),
        "region": TagInfo("speaker-info.txt REGION, verbatim (a town, county or country; often empty)"),
        "age": TagInfo("age in years from speaker-info.txt", demographic=True),
        "age_band": TagInfo("ten-year band of the age", demographic=True),
        "gender": TagInfo("speaker-info.txt GENDER (F/M) as female/male", demographic=True),
        "device": TagInfo("microphone: mic1 = DPA 4035 omni (the only one in 0.80), mic2 = Sennheiser MKH 800"),
    }
    Options = VCTKOptions

    def __init__(self, source: Path, options: ImporterOptions, split: str | None = None) -> None:
        super().__init__(source, options, split)
        assert isinstance(options, VCTKOptions)
        self.mics: tuple[str, ...] = options.mics
        self.keep_unlisted = options.unlisted == "keep"
        if not (source / SPEAKER_INFO).is_file():
            inner = sorted(child for child in source.glob(f"*/{SPEAKER_INFO}") if child.is_file())
            if inner:  # the zip or tarball's own top folder (VCTK-Corpus/, VCTK-Corpus-0.92/)
                raise InputError(f"{source}: no {SPEAKER_INFO} here, but {inner[0].parent} has one; pass that folder")
        self.info = self.require(SPEAKER_INFO)
        self.txt = self.require("txt")
        self.audio = self.require(NEW_AUDIO, OLD_AUDIO)
        self.old = self.audio.name == OLD_AUDIO
        if self.old and self.mics != ("mic1",):
            raise InputError(
                f"{self.audio}: release 0.80 (wav48/) has one microphone, the DPA 4035 (mic1); drop -O mics"
            )

    def estimate(self) -> int:
        return sum(len(_files(self.txt / speaker)) for speaker in _folders(self.txt)) * len(self.mics)

    def rows(self) -> Iterator[Record | Reject]:
        speakers: dict[str, Speaker] = {}
        with self.info.open(encoding="utf-8") as handle:
            for line, text in enumerate(handle, start=1):
                row = parse_speaker_line(text)
                if row is not None:
                    speakers[row.id] = row
                elif text.strip() and text.split()[0].upper() != "ID":
                    yield Reject("malformed speaker-info row", self.where(self.info, line), None, text.strip())
        for folder in sorted(_folders(self.txt) | _folders(self.audio)):
            yield from self._speaker(folder, speakers.get(folder))

    def _speaker(self, folder: str, speaker: Speaker | None) -> Iterator[Record | Reject]:
        """Every utterance × microphone of one speaker folder, in utterance order."""
        texts = {name[: -len(".txt")] for name in _files(self.txt / folder) if name.endswith(".txt")}
        audio = self._audio_files(folder)
        tags = self._tags(speaker) if speaker else {}
        # string paths, joined once per speaker: pathlib per row would be most of the import's time
        txt_dir, audio_dir = os.path.join(self.txt, folder), os.path.join(self.audio, folder)
        shown_txt, shown_audio = self.where(self.txt / folder), self.where(self.audio / folder)
        for utterance in sorted(texts | {utt for utt, _ in audio}):
            has_text = utterance in texts
            if has_text:
                where = f"{shown_txt}/{utterance}.txt:1"
            else:  # no transcript: the row is named by its first audio file
                first = "mic1" if (utterance, "mic1") in audio else "mic2"
                where = f"{shown_audio}/{self._audio_name(utterance, first)}"
            text: str | None = None
            for mic in self.mics:
                name = self._audio_name(utterance, mic)
                uid = f"{utterance}_{mic}" if len(self.mics) > 1 else utterance
                if speaker is None and not self.keep_unlisted:
                    detail = f"{folder} has no row in {SPEAKER_INFO}"
                    yield Reject("speaker not in speaker-info.txt", where, uid, detail)
                elif not has_text:
                    yield Reject("no transcript file", where, uid, f"no {shown_txt}/{utterance}.txt")
                elif (utterance, mic) not in audio:
                    comment = f" ({SPEAKER_INFO}: {speaker.comment})" if speaker and speaker.comment else ""
                    yield Reject(f"no {mic} recording", where, uid, f"no {shown_audio}/{name}{comment}")
                else:
                    if text is None:  # one read per utterance, however many microphones
                        with open(os.path.join(txt_dir, f"{utterance}.txt"), encoding="utf-8") as handle:
                            text = handle.read().strip()
                    path = Path(os.path.join(audio_dir, name))
                    yield Record(uid, path, text, folder, {**tags, "device": mic}, source=where)

    def _audio_files(self, folder: str) -> set[tuple[str, str]]:
        """(utterance, mic) pairs that have an audio file."""
        found: set[tuple[str, str]] = set()
        for name in _files(self.audio / folder):
            if self.old and name.endswith(".wav"):
                found.add((name[: -len(".wav")], "mic1"))
            elif not self.old and name.endswith(".flac"):
                utterance, _, mic = name[: -len(".flac")].rpartition("_")
                if mic in ("mic1", "mic2"):
                    found.add((utterance, mic))
        return found

    def _audio_name(self, utterance: str, mic: str) -> str:
        return f"{utterance}.wav" if self.old else f"{utterance}_{mic}.flac"

    @staticmethod
    def _tags(speaker: Speaker) -> dict[str, str]:
        return tag_values(
            {
                "accent": accent_label(speaker.accent),
                "accent_raw": speaker.accent,
                "region": speaker.region,
                "age": speaker.age,
                "age_band": age_band(speaker.age),
                "gender": gender_code(speaker.gender) or label(speaker.gender),
            }
        )
