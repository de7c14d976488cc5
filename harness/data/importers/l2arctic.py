"""L2-ARCTIC (Zhao et al., Interspeech 2018; TAMU PSI lab): non-native English read speech.

The release (``l2arctic_release_v5.0.zip``) holds one zip per speaker (``ABA.zip`` ...) and
``suitcase_corpus.zip``; unzipped, the root has one folder per speaker code::

    ABA/wav/arctic_a0001.wav          44.1 kHz
    ABA/transcript/arctic_a0001.txt   one line: the CMU ARCTIC prompt
    ABA/textgrid/arctic_a0001.TextGrid     forced alignment (every utterance)
    ABA/annotation/arctic_a0001.TextGrid   manual mispronunciation marks (about 150 per speaker)
    suitcase_corpus/{wav,transcript,annotation}/aba.wav ...   spontaneous narratives, by speaker code
    README.md  LICENSE  PROMPTS

There is no speaker table file; the README's "File summary and speaker information" Markdown
table gives each code's gender and native language. It is embedded here (v5.0: 24 speakers, four
per L1) and also read from ``README.md`` when the source has one and its table parses: a row
there wins over the embedded one, so a later or edited release is read as shipped. A folder in
neither table is not a speaker this importer can tag: its rows are rejected.

``--split scripted`` (the default) reads the ARCTIC prompts; ``--split suitcase`` reads the
suitcase corpus (22 speakers, about a minute each of retelling a picture story), kept apart
because spontaneous one-minute narratives and 3.6-second read prompts differ in ways that
would confound any comparison between them. Some speakers skipped prompts (the README lists
them): there is no file, so no row; a wav without a transcript is rejected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

from harness.data.importers.base import (
    Importer,
    ImporterOptions,
    Record,
    Reject,
    TagInfo,
    gender_code,
    label,
    tag_values,
)
from harness.errors import InputError

SUITCASE = "suitcase_corpus"
README = "README.md"
# The v5.0 README's table (Speaker | Gender | Native Language): code → (gender, native language).
SPEAKERS: Mapping[str, tuple[str, str]] = {
    "ABA": ("M", "Arabic"), "SKA": ("F", "Arabic"), "YBAA": ("M", "Arabic"), "ZHAA": ("F", "Arabic"),
    "BWC": ("M", "Chinese"), "LXC": ("F", "Chinese"), "NCC": ("F", "Chinese"), "TXHC": ("M", "Chinese"),
    "ASI": ("M", "Hindi"), "RRBI": ("M", "Hindi"), "SVBI": ("F", "Hindi"), "TNI": ("F", "Hindi"),
    "HJK": ("F", "Korean"), "HKK": ("M", "Korean"), "YDCK": ("F", "Korean"), "YKWK": ("M", "Korean"),
    "EBVS": ("M", "Spanish"), "ERMS": ("M", "Spanish"), "MBMPS": ("F", "Spanish"), "NJS": ("F", "Spanish"),
    "HQTV": ("M", "Vietnamese"), "PNV": ("F", "Vietnamese"), "THV": ("F", "Vietnamese"), "TLV": ("M", "Vietnamese"),
}  # fmt: skip
PROMPT_SET = re.compile(r"^(arctic_[ab])\d+$")


def readme_speakers(text: str) -> dict[str, tuple[str, str]]:
    """The README's speaker table (``|Speaker|Gender|Native Language|...``), {} if it has none."""
    found: dict[str, tuple[str, str]] = {}
    columns: dict[str, int] | None = None
    for line in text.splitlines():
        if not line.strip().startswith("|"):
            columns = None  # a table ends at the first line that is not a row
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if columns is None:
            names = {cell.casefold(): i for i, cell in enumerate(cells)}
            if {"speaker", "gender", "native language"} <= set(names):
                columns = {key: names[key] for key in ("speaker", "gender", "native language")}
            continue
        if len(cells) <= max(columns.values()) or set(cells[columns["speaker"]]) <= set("-: "):
            continue  # the |---| rule, or a short row
        code = cells[columns["speaker"]]
        if code.startswith("*") or not code.isalnum():  # the **Total** row
            continue
        found[code] = (cells[columns["gender"]], cells[columns["native language"]])
    return found


def _stems(folder: Path, suffix: str) -> dict[str, str]:
    """File stem → name for the files in ``folder`` ending in ``suffix`` (any case); {} if it is missing."""
    try:
        with os.scandir(folder) as entries:
            names = [entry.name for entry in entries if entry.is_file()]
    except FileNotFoundError:
        return {}
    return {name[: -len(suffix)]: name for name in names if name.lower().endswith(suffix.lower())}


def _utterances_in(folder: Path) -> bool:
    """Whether ``folder`` looks like a speaker's (or the suitcase corpus's): a wav/ or transcript/ in it."""
    return (folder / "wav").is_dir() or (folder / "transcript").is_dir()


class L2ArcticImporter(Importer):
    name = "l2arctic"
    description = "L2-ARCTIC: CMU ARCTIC prompts read by 24 non-native English speakers, four per L1, six L1s"
    homepage = "https://psi.engr.tamu.edu/l2-arctic-corpus/"
    licence = "CC-BY-NC-4.0 (see the release's LICENSE file)"
    splits = ("scripted", "suitcase")
    tags: ClassVar = {
        "l1": TagInfo("speaker's native language from the README table, as a label (arabic, chinese, ...)"),
        "accent": TagInfo("the L1-accented English group: the same value as l1"),
        "gender": TagInfo("README table gender (F/M) as female/male", demographic=True),
        "prompt_set": TagInfo("CMU ARCTIC prompt set: arctic_a or arctic_b (scripted split only)"),
        "annotated": TagInfo("yes where annotation/ has a manual mispronunciation TextGrid for the utterance"),
    }

    def __init__(self, source: Path, options: ImporterOptions, split: str | None = None) -> None:
        super().__init__(source, options, split)
        if self.split == "suitcase":
            self.folders = [self._suitcase_folder()]
        else:
            self.folders = self._speaker_folders()

    def _speaker_folders(self) -> list[Path]:
        folders = sorted(child for child in self.source.iterdir() if child.name != SUITCASE and _utterances_in(child))
        if folders:
            return folders
        zipped = sorted(path.name for path in self.source.glob("*.zip") if path.stem in SPEAKERS)
        if zipped:
            raise InputError(
                f"{self.source}: the speaker archives are still zipped ({zipped[0]} ...); unzip each one in place"
            )
        inner = sorted(wav.parent.parent for wav in self.source.glob("*/*/wav") if wav.parent.name in SPEAKERS)
        if inner:  # the release's own top folder (l2arctic_release_v5.0/)
            raise InputError(f"{self.source}: no speaker folders here, but {inner[0]} has them; pass that folder")
        raise InputError(
            f"{self.source}: no speaker folders (ABA/wav, ABA/transcript, ...); pass the unzipped L2-ARCTIC release"
        )

    def _suitcase_folder(self) -> Path:
        folder = self.source / SUITCASE
        if _utterances_in(folder):
            return folder
        if (self.source / f"{SUITCASE}.zip").is_file():
            raise InputError(f"{self.source}: {SUITCASE}.zip is still zipped; unzip it in place")
        raise InputError(f"{self.source}: no {SUITCASE}/wav; pass an L2-ARCTIC release of v5.0 or later")

    def estimate(self) -> int:
        return sum(len(_stems(folder / "transcript", ".txt")) for folder in self.folders)

    def speakers(self) -> dict[str, tuple[str, str]]:
        """Speaker code → (gender, native language): the embedded v5.0 table, overridden by README.md's."""
        table = dict(SPEAKERS)
        readme = self.source / README
        if readme.is_file():
            table.update(readme_speakers(readme.read_text(encoding="utf-8", errors="replace")))
        return table

    def rows(self) -> Iterator[Record | Reject]:
        table = self.speakers()
        for folder in self.folders:
            yield from self._folder(folder, table)

    def _folder(self, folder: Path, table: Mapping[str, tuple[str, str]]) -> Iterator[Record | Reject]:
        """One speaker folder's utterances (or the suitcase folder's narratives), in name order."""
        suitcase = folder.name == SUITCASE
        texts = _stems(folder / "transcript", ".txt")
        wavs = _stems(folder / "wav", ".wav")
        annotated = _stems(folder / "annotation", ".TextGrid")
        # string paths, joined once per folder: pathlib per row would be most of the import's time
        wav_dir, txt_dir = os.path.join(folder, "wav"), os.path.join(folder, "transcript")
        shown = self.where(folder)
        for stem in sorted(texts.keys() | wavs.keys()):
            code = stem.upper() if suitcase else folder.name
            uid = f"{code}_suitcase" if suitcase else f"{code}_{stem}"
            wav, txt = wavs.get(stem, f"{stem}.wav"), texts.get(stem, f"{stem}.txt")
            where = f"{shown}/transcript/{txt}:1" if stem in texts else f"{shown}/wav/{wav}"
            speaker = table.get(code)
            if speaker is None:
                detail = f"{code} is not in {README}'s speaker table nor in the v5.0 speakers"
                yield Reject("speaker not in the speaker table", where, uid, detail)
            elif stem not in texts:
                yield Reject("no transcript file", where, uid, f"no {shown}/transcript/{txt}")
            else:
                with open(os.path.join(txt_dir, txt), encoding="utf-8") as handle:
                    text = handle.read().strip()
                tags = self._tags(speaker, None if suitcase else stem, stem in annotated)
                yield Record(uid, Path(os.path.join(wav_dir, wav)), text, code, tags, source=where)

    @staticmethod
    def _tags(speaker: tuple[str, str], stem: str | None, annotated: bool) -> dict[str, str]:
        gender, native = speaker
        prompt = PROMPT_SET.match(stem) if stem else None
        l1 = label(native)
        return tag_values(
            {
                "l1": l1,
                "accent": l1,
                "gender": gender_code(gender) or label(gender),
                "prompt_set": prompt.group(1) if prompt else None,
                "annotated": "yes" if annotated else "no",
            }
        )
