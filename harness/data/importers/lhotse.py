"""lhotse manifests: a CutSet, or a SupervisionSet with its RecordingSet, as JSONL (``.jsonl.gz``).

lhotse recipes write ``{corpus}_recordings_{split}.jsonl.gz`` and
``{corpus}_supervisions_{split}.jsonl.gz`` (``lhotse prepare``), and k2/icefall or ``lhotse cut``
write ``{corpus}_cuts_{split}.jsonl.gz``: one JSON object per line. A cut line embeds its
``recording`` and its ``supervisions``, whose ``start`` is relative to the cut; a supervision line
names its recording by ``recording_id`` and its ``start`` is relative to the recording. The files
are parsed here with ``json``/``gzip`` line by line, never with lhotse itself: the harness does
not depend on it.

One record per supervision, read in place from the recording's file: ``offset`` is the
supervision's start in the recording (``cut.start + supervision.start``), so a supervision that
a cut holds only part of (windowed cuts) is read whole, as its text covers the whole of it. A
supervision repeated in several cuts (windowed or ``trim_to_supervisions`` cuts) is imported
once, from its first cut; the later copies are rejects. Padded cuts (a ``MixedCut`` of one cut
and padding) read as the cut; a real mix of several cuts is rejected: no file holds it.

Quirks of the format:

* lhotse writes an audio path as it was given, and reads a relative one from the current
  folder of the process reading it (``AudioSource`` hands the string to the audio backend).
  Recipes are usually run from a recipe folder two levels above ``data/manifests``, so a
  relative path is resolved against ``-O audio_root`` (default: the manifest's folder) and the
  importer checks the first recordings up front, naming the folder where they do exist.
* ``channel`` is an int or a list. A supervision on one channel of a multi-channel file (a
  telephone call, one side per channel) would be mixed to mono with the other side's speech;
  it is rejected unless ``-O multichannel=mix``. Where each channel is its own file (several
  ``sources``), the file holding the supervision's channel is read.
* ``language`` is whatever the recipe wrote: a name (``English``, ``Chinese``), a code (``en``)
  or a variety (``English-Nigerian``); see :func:`language_code`.
* ``custom`` holds anything: string and scalar values become tags, nested ones are skipped.
* A recipe copies the corpus's transcripts verbatim, markup included. For EdAcc (manifests named
  ``edacc_*``, or ``-O markup=edacc``) the native ``edacc`` importer's rules apply, through the
  same function (:func:`harness.data.importers.edacc.reference`): the read passage, whose text is
  ``IGNORE_TIME_SEGMENT_IN_SCORING``, and segments of only ``<NO-SPEECH>``-like tags are
  rejected, and ``<LAUGH>``, ``<OVERLAP>``... are removed from the reference.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import re
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TextIO

from pydantic import BeforeValidator, Field

from harness.data.importers import edacc
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
)
from harness.data.manifest import RESERVED_FIELDS, RESULT_COLUMNS
from harness.errors import InputError

SUFFIXES = (".jsonl.gz", ".jsonl")
CUT_LEVEL = frozenset({"mixed cut", "no recording", "unknown cut type"})  # the cut's fault: another cut may hold it
KINDS = ("cuts", "supervisions", "recordings")
TOLERANCE = 1e-3  # seconds a supervision may pass its recording's end: lhotse's own validation allows this
CHECKED_RECORDINGS = 20  # recordings read up front to check that relative audio paths resolve
FREE_TEXT = ("accent", "dialect", "l1", "region")  # custom keys kept as <key> (a label) and <key>_raw
LHOTSE_INTERNAL = frozenset({"shard_origin", "shar_epoch", "dataloading_info"})  # set by lhotse, not the corpus
LANGUAGES = {  # names lhotse recipes write (``language="English"``), as ISO 639-1 codes
    "arabic": "ar", "basque": "eu", "bengali": "bn", "cantonese": "yue", "catalan": "ca", "chinese": "zh",
    "czech": "cs", "danish": "da", "dutch": "nl", "english": "en", "finnish": "fi", "french": "fr",
    "german": "de", "greek": "el", "hebrew": "he", "hindi": "hi", "hungarian": "hu", "indonesian": "id",
    "irish": "ga", "italian": "it", "japanese": "ja", "korean": "ko", "malay": "ms", "mandarin": "zh",
    "norwegian": "no", "persian": "fa", "polish": "pl", "portuguese": "pt", "romanian": "ro", "russian": "ru",
    "spanish": "es", "swahili": "sw", "swedish": "sv", "tagalog": "tl", "tamil": "ta", "telugu": "te",
    "thai": "th", "tibetan": "bo", "turkish": "tr", "ukrainian": "uk", "urdu": "ur", "vietnamese": "vi",
    "welsh": "cy",
}  # fmt: skip
SHAR = re.compile(r"cuts\.\d{6}\.jsonl(?:\.gz)?")  # Lhotse Shar: cuts.000000.jsonl.gz beside tar shards
CODE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")
SOURCE_FIXES = {  # AudioSource types other than "file", and how to get a file from each
    "url": "download it and point the recording at the file",
    "command": "run the command once to write a file",
    "memory": "write the audio out with CutSet.save_audios(DIR)",
    "shar": "write the audio out with CutSet.from_shar(...).save_audios(DIR)",
}


class LhotseOptions(ImporterOptions):
    cuts: str | None = Field(None, description="the CutSet file to read, relative to the source folder")
    supervisions: str | None = Field(None, description="the SupervisionSet file (with -O recordings=)")
    recordings: str | None = Field(None, description="the RecordingSet file (with -O supervisions=)")
    audio_root: Path | None = Field(
        None, description="folder relative audio paths start from (where lhotse ran); default: the manifest's folder"
    )
    multichannel: Literal["reject", "mix"] = Field(
        "reject", description="a supervision on some channels of a multi-channel file: reject, or mix all to mono"
    )
    custom: Annotated[tuple[str, ...], BeforeValidator(split_commas)] = Field(
        ("*",), description="custom keys that become tags: * for every key, a comma list, or empty for none"
    )
    language: str = Field("en", min_length=1, description="language code for supervisions that give none")
    markup: Literal["auto", "edacc", "none"] = Field(
        "auto", description="corpus transcript markup to apply: auto (edacc for edacc_* manifests), edacc, none"
    )
    untranscribed: Literal["keep", "reject"] = Field(
        "keep", description="with EdAcc markup: reject segments holding <overlap> or <foreign>, as -O for edacc"
    )


class LhotseImporter(Importer):
    name = "lhotse"
    description = "lhotse CutSet, or SupervisionSet + RecordingSet, JSONL(.gz) manifests"
    # lhotse splits are whatever the recipe named them: a file-name filter, not a fixed list
    free_split = "the manifests whose file name has _NAME (e.g. librispeech_cuts_test-clean.jsonl.gz)"
    homepage = "https://github.com/lhotse-speech/lhotse"
    licence = "the licence of the corpus the manifests describe (lhotse itself is Apache-2.0)"
    Options = LhotseOptions
    tags: ClassVar = {
        "gender": TagInfo("supervision 'gender': M/F as male/female, others as a label", demographic=True),
        "gender_raw": TagInfo("supervision 'gender', verbatim", demographic=True),
        "language_raw": TagInfo("supervision 'language' where the code drops part of it (en-US, English-Nigerian)"),
        "accent": TagInfo("custom 'accent' as a label (lhotse's L2-ARCTIC recipe puts the L1 here)"),
        "accent_raw": TagInfo("custom 'accent', verbatim"),
        "dialect": TagInfo("custom 'dialect' as a label"),
        "dialect_raw": TagInfo("custom 'dialect', verbatim"),
        "l1": TagInfo("custom 'l1' (first language) as a label"),
        "l1_raw": TagInfo("custom 'l1', verbatim"),
        "region": TagInfo("custom 'region' as a label"),
        "region_raw": TagInfo("custom 'region', verbatim"),
        "age": TagInfo("custom 'age', verbatim", demographic=True),
        "age_band": TagInfo("ten-year band of a numeric custom 'age'", demographic=True),
        "untranscribed": TagInfo("EdAcc markup: 'foreign' and/or 'overlap', speech the reference leaves out"),
    }

    options: LhotseOptions

    def __init__(self, source: Path, options: ImporterOptions, split: str | None = None) -> None:
        super().__init__(source, options, split)
        self.cuts, self.supervisions, self.recordings = self._manifests()
        table = self.cuts or self.recordings or self.source  # _manifests() names cuts or both of the pair
        self.audio_root = self.options.audio_root or table.parent
        self._check_audio_root(table)
        markup = self.options.markup
        self.edacc_markup = markup == "edacc" or (markup == "auto" and _name_parts(table)[0].lower() == "edacc")

    # -- choosing the files -------------------------------------------------------------------------------

    def _manifests(self) -> tuple[Path | None, Path | None, Path | None]:
        opts = self.options
        if opts.cuts and (opts.supervisions or opts.recordings):
            raise InputError("-O cuts= reads a CutSet, -O supervisions=/recordings= a pair; give one or the other")
        if (opts.supervisions is None) != (opts.recordings is None):
            raise InputError("-O supervisions= and -O recordings= go together: name both files")
        if (opts.cuts or opts.supervisions) and self.split:
            raise InputError(f"--split {self.split}: -O names the file already; leave --split out")
        if opts.cuts:
            return self._named(opts.cuts), None, None
        if opts.supervisions and opts.recordings:
            return None, self._named(opts.supervisions), self._named(opts.recordings)
        if any(SHAR.fullmatch(path.name) for path in self.source.iterdir()):
            raise InputError(
                f"{self.source}: a Lhotse Shar folder keeps its audio in tar shards; write it to files first "
                "(CutSet.from_shar(...).save_audios(DIR).to_file('cuts.jsonl.gz'))"
            )
        sets = self._manifest_sets()
        usable = {key: kinds for key, kinds in sets.items() if "cuts" in kinds or len(kinds) == 2}
        if len(usable) > 1:
            names = ", ".join(sorted(usable))
            choose = "-O cuts=NAME" if self.split else "--split NAME or -O cuts=NAME"
            raise InputError(f"{self.source}: manifests of several sets ({names}); choose one with {choose}")
        if not usable:
            raise InputError(self._incomplete(sets) if sets else self._nothing_found())
        ((key, kinds),) = usable.items()
        chosen = kinds.get("cuts") or kinds["supervisions"] + kinds["recordings"]
        if len(chosen) != (1 if "cuts" in kinds else 2):
            names = ", ".join(path.name for path in chosen)
            raise InputError(f"{self.source}: several files for {key} ({names}); name one with -O")
        if "cuts" in kinds:
            return chosen[0], None, None  # where the pair is there too, the cuts are what the recipe went on with
        return None, chosen[0], chosen[1]

    def _manifest_sets(self) -> dict[str, dict[str, list[Path]]]:
        """JSONL manifests by set: ``x_cuts_test``, ``x_supervisions_test``, ``x_recordings_test`` are ``x_*_test``."""
        sets: dict[str, dict[str, list[Path]]] = {}
        for path in sorted(self.source.iterdir()):
            parts = _name_parts(path)
            kind = next((kind for kind in KINDS if kind in parts), None)
            if not path.is_file() or not path.name.endswith(SUFFIXES) or kind is None:
                continue
            if self.split is not None and self.split not in parts:
                continue
            key = "_".join("*" if part == kind else part for part in parts)
            sets.setdefault(key, {}).setdefault(kind, []).append(path)
        return sets

    def _named(self, name: str) -> Path:
        path = self.source / name
        if not path.is_file():
            raise InputError(f"{path}: no such file; name a manifest in {self.source}")
        if not path.name.endswith(SUFFIXES):
            raise InputError(f"{path}: not JSONL; convert it with 'lhotse copy {path.name} NAME.jsonl.gz'")
        return path

    @staticmethod
    def _incomplete(sets: dict[str, dict[str, list[Path]]]) -> str:
        key, kinds = next(iter(sets.items()))
        have, lack = ("supervisions", "recordings") if "supervisions" in kinds else ("recordings", "supervisions")
        return f"{kinds[have][0]}: no {key.replace('*', lack)}.jsonl.gz beside it; a {have[:-1]} set needs its {lack}"

    def _nothing_found(self) -> str:
        names = sorted(path.name for path in self.source.iterdir() if path.is_file())
        legacy = [name for name in names if name.endswith((".json", ".json.gz", ".yaml", ".yml"))]
        if legacy:
            return f"{self.source}: {legacy[0]} is not JSONL; convert it with 'lhotse copy {legacy[0]} NAME.jsonl.gz'"
        split = f" for --split {self.split}" if self.split else ""
        return (
            f"{self.source}: no *cuts*.jsonl.gz or *supervisions*/*recordings*.jsonl.gz{split}; pass the folder "
            "lhotse wrote the manifests to (e.g. data/manifests)"
        )

    def _check_audio_root(self, table: Path) -> None:
        """Relative audio paths that resolve nowhere would make every row a reject: say where they do."""
        lines = self._lines(table)
        try:
            head = [row for _, row, _ in itertools.islice(lines, CHECKED_RECORDINGS) if row is not None]
        finally:
            lines.close()
        relative = [
            source
            for row in head
            for recording in _recordings_in(row, is_cut=self.cuts is not None)
            for source in _file_sources(recording)
            if not Path(source).is_absolute()
        ]
        if not relative or any((self.audio_root / source).is_file() for source in relative):
            return
        sample = relative[0]
        found = next((d for d in (Path.cwd(), *table.resolve().parents) if (d / sample).is_file()), None)
        hint = f"they are under {found}: pass -O audio_root={found}" if found else "pass -O audio_root=THAT_FOLDER"
        raise InputError(
            f"{table}: relative audio paths such as {sample} are not under {self.audio_root}; lhotse reads them "
            f"from the folder it ran in; {hint}"
        )

    # -- reading ------------------------------------------------------------------------------------------

    def estimate(self) -> int:
        table = self.cuts or self.supervisions
        assert table is not None
        if not table.name.endswith(".gz"):
            return count_lines(table)
        total = 0
        with self._reading(table), gzip.open(table, "rb") as handle:
            while block := handle.read(1 << 20):
                total += block.count(b"\n")
        return total

    def rows(self) -> Iterator[Record | Reject]:
        seen: dict[str, str] = {}  # supervision id -> where it was first read: a repeat is the same utterance
        for item in self._cut_rows() if self.cuts else self._supervision_rows():
            if item.id and item.id in seen:
                yield Reject("repeated supervision", item.source, item.id, f"read from {seen[item.id]} already")
                continue
            if item.id and not (isinstance(item, Reject) and item.reason in CUT_LEVEL):
                seen[item.id] = item.source  # a reject that is the supervision's own (not its cut's) counts too
            yield item

    def _lines(self, path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
        """(line number, the JSON object, '') per non-blank line; (n, None, what is wrong) where it is not one."""
        with self._reading(path), _open(path) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, None, f"not JSON ({exc.msg} at column {exc.colno})"
                    continue
                if isinstance(value, dict):
                    yield number, value, ""
                else:
                    yield number, None, f"a JSON {type(value).__name__}, not an object"

    @staticmethod
    @contextmanager
    def _reading(path: Path) -> Iterator[None]:
        """A damaged file is the user's to fix, in one line (also where the writer's own handler is not around)."""
        try:
            yield
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputError(f"{path}: a damaged or truncated gzip file ({exc}); copy or write it again") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 ({exc.reason}); lhotse writes UTF-8 JSONL") from None

    def _cut_rows(self) -> Iterator[Record | Reject]:
        assert self.cuts is not None
        for number, cut, problem in self._lines(self.cuts):
            where = self.where(self.cuts, number)
            if cut is None:
                yield Reject("malformed line", where, None, problem)
                continue
            yield from self._cut(cut, where)

    def _cut(self, cut: dict[str, Any], where: str) -> Iterator[Record | Reject]:
        kind = cut.get("type", "MonoCut")
        if kind == "PaddingCut":
            return  # silence, no supervisions
        if kind == "MixedCut":
            tracks = [t.get("cut") for t in cut.get("tracks") or [] if isinstance(t, dict)]
            real = [t for t in tracks if isinstance(t, dict) and t.get("type") != "PaddingCut"]
            if len(real) == 1 and not cut.get("transforms"):
                yield from self._cut(real[0], where)  # a padded cut: the padding is not in the file
                return
            for track in real:
                for sup in _supervisions(track):
                    yield Reject("mixed cut", where, _id(sup), f"cut {cut.get('id')} mixes {len(real)} cuts")
            return
        if kind not in ("MonoCut", "MultiCut"):
            yield Reject("unknown cut type", where, _id(cut), f"type {kind}")
            return
        recording = cut.get("recording")
        start = _number(cut.get("start", 0))
        for sup in _supervisions(cut):
            if not isinstance(recording, dict):
                yield Reject("no recording", where, _id(sup), f"cut {cut.get('id')} has features but no recording")
                continue
            offset = _number(sup.get("start", 0))
            position = None if start is None or offset is None else start + offset
            yield self._record(sup, recording, position, sup.get("channel", cut.get("channel")), cut, where)

    def _supervision_rows(self) -> Iterator[Record | Reject]:
        assert self.supervisions is not None and self.recordings is not None
        recordings = self._recording_table(self.recordings)
        for number, sup, problem in self._lines(self.supervisions):
            where = self.where(self.supervisions, number)
            if sup is None:
                yield Reject("malformed line", where, None, problem)
                continue
            recording = recordings.get(str(sup.get("recording_id")))
            if recording is None:
                detail = f"recording {sup.get('recording_id')} is not in {self.recordings.name}"
                yield Reject("unknown recording", where, _id(sup), detail)
                continue
            yield self._record(sup, recording, _number(sup.get("start", 0)), sup.get("channel"), None, where)

    def _recording_table(self, path: Path) -> dict[str, dict[str, Any]]:
        """Every recording by id: one small entry per recording (a supervision set refers to them in any order)."""
        table: dict[str, dict[str, Any]] = {}
        for number, recording, _ in self._lines(path):
            if recording is None or "id" not in recording:
                raise InputError(f"{path}:{number}: not a lhotse recording; is this a RecordingSet file?")
            table[str(recording["id"])] = recording
        return table

    def _record(
        self,
        sup: dict[str, Any],
        recording: dict[str, Any],
        offset: float | None,
        channel: Any,
        cut: dict[str, Any] | None,
        where: str,
    ) -> Record | Reject:
        sup_id = _id(sup)
        duration = _number(sup.get("duration"))
        length = _number(recording.get("duration"))
        if offset is None or duration is None or length is None:
            return Reject("malformed supervision", where, sup_id, "start or duration is not a number")
        if offset < -TOLERANCE or offset + duration > length + TOLERANCE:
            detail = f"{offset:.3f}-{offset + duration:.3f} s, the recording is {length:.3f} s"
            return Reject("outside recording", where, sup_id, detail)
        transforms = [t for t in recording.get("transforms") or [] if not _is_resample(t)]
        if transforms:
            names = ", ".join(str(t.get("name", t)) if isinstance(t, dict) else str(t) for t in transforms)
            detail = f"{names}: the file on disk is not the audio the cut describes"
            return Reject("transformed recording", where, sup_id, detail)
        audio = self._audio(recording, channel, where, sup_id)
        if isinstance(audio, Reject):
            return audio
        text, tags = str(sup.get("text") or ""), self._tags(sup, cut)
        if self.edacc_markup:
            ref = edacc.reference(text, self.options.untranscribed)
            if ref.reject:
                return Reject(ref.reject, where, sup_id, ref.detail)
            text = ref.words
            if ref.untranscribed:
                tags["untranscribed"] = ",".join(ref.untranscribed)
        return Record(
            id=sup_id or "",
            audio=audio,
            text=text,
            speaker=str(sup["speaker"]) if sup.get("speaker") not in (None, "") else None,
            tags=tags,
            offset=max(offset, 0.0),
            duration=duration,
            language=language_code(sup.get("language"))[0] or self.options.language,
            source=where,
        )

    def _audio(self, recording: dict[str, Any], channel: Any, where: str, sup_id: str | None) -> Path | Reject:
        sources = [s for s in recording.get("sources") or [] if isinstance(s, dict)]
        available = sorted({c for s in sources for c in _channels(s.get("channels"))})
        wanted = _channels(channel) or available
        holding = [s for s in sources if set(_channels(s.get("channels"))) & set(wanted)]
        if not holding or not set(wanted) <= set(available):
            return Reject("unknown channel", where, sup_id, f"channel {channel}; the recording has {available}")
        if len(holding) > 1:
            names = ", ".join(str(s.get("source")) for s in holding)
            detail = f"channels {wanted} are in {names}; pick one with lhotse first (cut.with_channels(N))"
            return Reject("spans several files", where, sup_id, detail)
        chosen = holding[0]
        kind = chosen.get("type")
        if kind != "file":
            shown = str(chosen.get("source"))[:80] if isinstance(chosen.get("source"), str) else "bytes"
            fix = SOURCE_FIXES.get(str(kind), f"type '{kind}' is not one lhotse 1.x writes")
            reason = f"{kind} audio source" if kind in SOURCE_FIXES else "unknown audio source"
            return Reject(reason, where, sup_id, f"{shown}: only local files are read; {fix}")
        on_file = _channels(chosen.get("channels"))
        if len(on_file) > len(wanted) and self.options.multichannel == "reject":
            detail = (
                f"channel {wanted} of the {len(on_file)}-channel {chosen.get('source')}: mixing to mono adds the "
                "other channels; -O multichannel=mix accepts it"
            )
            return Reject("one channel of a multi-channel file", where, sup_id, detail)
        path = Path(str(chosen.get("source")))
        return path if path.is_absolute() else self.audio_root / path

    def _tags(self, sup: dict[str, Any], cut: dict[str, Any] | None) -> dict[str, str]:
        """Supervision fields, then supervision ``custom``, then cut ``custom``: the first to give a tag wins."""
        tags: dict[str, str] = {}
        gender = _scalar(sup.get("gender"))
        if gender:
            tags["gender"], tags["gender_raw"] = gender_code(gender) or label(gender) or gender, gender
        raw_language = _scalar(sup.get("language"))
        _, dropped = language_code(raw_language)
        if dropped and raw_language:
            tags["language_raw"] = raw_language
        for custom in (sup.get("custom"), (cut or {}).get("custom")):
            for key, value in (custom if isinstance(custom, Mapping) else {}).items():
                for tag, text in self._custom(str(key), value):
                    tags.setdefault(tag, text)
        return tags

    def _custom(self, key: str, value: Any) -> Iterator[tuple[str, str]]:
        wanted = self.options.custom
        text = _scalar(value)
        if not key or not text or key in LHOTSE_INTERNAL or ("*" not in wanted and key not in wanted):
            return
        tag = f"custom_{key}" if key in RESERVED_FIELDS or key in RESULT_COLUMNS else key
        if tag == "gender":
            yield tag, gender_code(text) or label(text) or text
            yield "gender_raw", text
        elif tag in FREE_TEXT:
            yield tag, label(text) or text
            yield f"{tag}_raw", text
        else:
            yield tag, text
            band = age_band(text) if tag == "age" else None
            if band:
                yield "age_band", band


def language_code(value: Any) -> tuple[str | None, bool]:
    """A lhotse ``language`` as a code, and whether the code drops part of the value.

    A name lhotse recipes use (``English``, ``Mandarin``) maps to its ISO 639-1 code; a code
    passes as its lower-case primary subtag (``en-US`` → ``en``, dropping the region); a variety
    naming a known language (``Singaporean English``, ``English-Nigerian``) maps to that language,
    dropping the variety; anything else is kept as a label. None where no language is given.
    """
    text = _scalar(value)
    if not text:
        return None, False
    folded = label(text)
    if folded in LANGUAGES:
        return LANGUAGES[folded], False
    if CODE.fullmatch(text):
        primary = re.split(r"[-_]", text)[0].lower()
        return primary, primary != text
    for word in folded.split("-"):
        if word in LANGUAGES:
            return LANGUAGES[word], True
    return folded or text, folded != text


@contextmanager
def _open(path: Path) -> Iterator[TextIO]:
    if path.name.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            yield handle
    else:
        with path.open(encoding="utf-8") as handle:
            yield handle


def _name_parts(path: Path) -> list[str]:
    """``librispeech_cuts_test-clean.jsonl.gz`` → [librispeech, cuts, test-clean]: how recipes name a split."""
    stem = path.name.removesuffix(".gz").removesuffix(".jsonl")
    return re.split(r"[_.]", stem)


def _recordings_in(row: dict[str, Any], is_cut: bool) -> Iterator[dict[str, Any]]:
    if not is_cut:
        yield row
        return
    if isinstance(row.get("recording"), dict):
        yield row["recording"]
    for track in row.get("tracks") or []:
        if isinstance(track, dict) and isinstance(track.get("cut"), dict):
            yield from _recordings_in(track["cut"], True)


def _file_sources(recording: dict[str, Any]) -> Iterator[str]:
    for source in recording.get("sources") or []:
        if isinstance(source, dict) and source.get("type") == "file" and isinstance(source.get("source"), str):
            yield source["source"]


def _supervisions(cut: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in cut.get("supervisions") or [] if isinstance(s, dict)]


def _channels(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return sorted({c for c in value if isinstance(c, int) and not isinstance(c, bool)})
    return []


def _is_resample(transform: Any) -> bool:
    """Resampling changes no timing and the harness resamples anyway; any other transform changes the audio."""
    return isinstance(transform, dict) and transform.get("name") == "Resample"


def _id(row: dict[str, Any]) -> str | None:
    value = row.get("id")
    return str(value) if value not in (None, "") else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _scalar(value: Any) -> str | None:
    """A string or scalar as tag text (``True`` → ``true``, ``23`` → ``23``); None for nested values and blanks."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return value.strip() or None
    return None
