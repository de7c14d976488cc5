"""A Kaldi data directory (``data/test``): ``text``, ``utt2spk``, ``wav.scp``, optional ``segments``.

Every file is one ``<key> <value>`` line per entry, the key ended by the first run of spaces or
tabs (``wav.scp``: ``<recording-id> <path>``; ``text``: ``<utt-id> <words...>``; ``segments``:
``<utt-id> <recording-id> <start> <end>``). Kaldi requires them sorted by key in C-locale byte
order (``utils/validate_data_dir.sh``), so the per-utterance files are merge-joined by walking
them in step: memory stays constant however many utterances there are. A file out of order (or
with a repeated key) stops the import with its file and line, and the command that fixes it.

* ``segments`` present: each utterance is a stretch of a recording (offset/duration, read in
  place; an end of ``-1`` runs to the end of the file, as in ``extract-segments``); ``wav.scp``
  lists recordings and is loaded. Absent: each utterance id is a ``wav.scp`` key, and ``wav.scp``
  (one line per utterance then) is joined like the others.
* ``wav.scp`` entries that run a command (ending in ``|``) or point into an ark (``x.ark:123``)
  are rejected: the harness reads audio files, so extract them to files first. A path may hold
  spaces (the value is the rest of the line). A relative path is relative to the directory the
  recipe ran in, which the data directory does not record: ``-O root=DIR`` names it; otherwise
  the data directory, its parent and its grandparent (a recipe root above ``data/test``) are
  tried in turn, the first holding the file wins.
* ``utt2<name>`` files (``utt2accent``, ``utt2dialect``, ``utt2lang``...) give a tag ``<name>``
  per utterance, joined in step; ``spk2<name>`` files (``spk2gender``...) give speaker tags and
  are loaded (one line per speaker). ``spk2gender``'s ``m``/``f`` become ``male``/``female``;
  ``spk2age`` adds ``age_band``. An utterance tag overrides a speaker tag of the same name.
  Not tags, skipped: ``utt2spk`` (the speaker), ``utt2dur``, ``utt2num_frames``, ``utt2uniq``,
  ``utt2warp``, ``spk2utt``, ``spk2warp``, and every ``reco2*`` file (``reco2file_and_channel``,
  ``reco2dur``...: bookkeeping, not speaker or recording attributes).
* An utterance missing from ``text`` or ``utt2spk`` (or, with segments, from ``segments``) is
  rejected with the file it is missing from; a ``segments`` line with a fifth (channel) field is
  rejected, since the harness mixes every file down to mono.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from harness.errors import InputError
from harness.importers.base import (
    Importer,
    ImporterOptions,
    Record,
    Reject,
    TagInfo,
    age_band,
    count_lines,
    gender_code,
)
from harness.manifest import RESERVED_FIELDS, RESULT_COLUMNS

_KEYED = re.compile(r"([^ \t]+)[ \t]*(.*)")  # Kaldi splits at the first run of spaces/tabs, nothing wider
_TAG_FILE = re.compile(r"(utt|spk)2(\w+)")
NOT_TAGS = {"utt": {"spk", "dur", "num_frames", "uniq", "warp"}, "spk": {"utt", "warp"}}
WAV_SCP = "wav.scp"  # a joined file's name; it cannot clash with a tag name (those hold no dot)
Where = Callable[[Path, int | None], str]


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a Kaldi file: its key, the rest of the line, and its 1-based line number."""

    key: str
    value: str
    line: int


@dataclass(frozen=True, slots=True)
class Utterance:
    """An utterance found in ``text``, ``utt2spk`` and (if present) ``segments`` alike."""

    id: str
    text: str
    speaker: str
    recording: str  # the utterance id itself when there is no segments file
    start: float  # seconds into the recording
    end: float | None  # None: to the end of the recording
    joined: Mapping[str, str]  # the values of the extra per-utterance files that list it
    source: str  # "text:12"


def unsorted(path: Path, line: int, key: str, previous: str) -> InputError:
    fault = f"repeats key '{key}'" if key == previous else f"is not sorted: key '{key}' comes after '{previous}'"
    return InputError(
        f"{path}:{line}: {fault}; Kaldi data files must be sorted and unique by key: run "
        f"utils/fix_data_dir.sh {path.parent} (or, there, LC_ALL=C sort -u -k1,1 -o {path.name} {path.name})"
    )


def entries(path: Path, *, check_sorted: bool = True) -> Iterator[Entry]:
    """Every non-blank line of ``path``, in order; out of order or repeated keys raise InputError."""
    previous: str | None = None
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            match = _KEYED.match(raw.strip(" \t\r\n"))
            if match is None:
                continue  # a blank line holds nothing
            key = match.group(1)
            # str order is code-point order, which is the UTF-8 byte order of LC_ALL=C sort
            if check_sorted and previous is not None and key <= previous:
                raise unsorted(path, number, key, previous)
            previous = key
            yield Entry(key, match.group(2).rstrip(" \t"), number)


def load(path: Path) -> dict[str, Entry]:
    """A per-speaker or per-recording file as a table (order not needed; a repeated key is an error)."""
    table: dict[str, Entry] = {}
    for entry in entries(path, check_sorted=False):
        if entry.key in table:
            raise unsorted(path, entry.line, entry.key, entry.key)
        table[entry.key] = entry
    return table


class _Stream:
    """A sorted file read one entry ahead, so several can be walked in step."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries = entries(path)
        self.head = next(self._entries, None)

    def pop(self) -> Entry:
        entry = self.head
        assert entry is not None
        self.head = next(self._entries, None)
        return entry

    def take(self, key: str) -> Entry | None:
        """The entry for ``key`` if the file has one, skipping the keys before it."""
        while self.head is not None and self.head.key < key:
            self.pop()
        return self.pop() if self.head is not None and self.head.key == key else None


def utterances(folder: Path, where: Where, joined: Mapping[str, Path] | None = None) -> Iterator[Utterance | Reject]:
    """Merge-join ``text``, ``utt2spk`` and ``segments`` (if present) of ``folder``, plus the sorted
    per-utterance files in ``joined`` (name → path; an utterance they lack just has no value)."""
    primary = {name: _Stream(folder / name) for name in ("text", "utt2spk", "segments") if (folder / name).is_file()}
    extra = {name: _Stream(path) for name, path in (joined or {}).items()}
    segmented = "segments" in primary
    while heads := [stream.head.key for stream in primary.values() if stream.head is not None]:
        key = min(heads)
        found = {
            name: stream.pop() for name, stream in primary.items() if stream.head is not None and stream.head.key == key
        }
        values = {name: entry.value for name, stream in extra.items() if (entry := stream.take(key)) is not None}
        located = {name: where(primary[name].path, entry.line) for name, entry in found.items()}
        yield _utterance(key, found, located, values, segmented)


def _utterance(
    key: str, found: dict[str, Entry], located: dict[str, str], values: dict[str, str], segmented: bool
) -> Utterance | Reject:
    """The utterance ``key`` from the lines the primary files hold for it (``located``: their file:line)."""
    first = located[next(iter(found))]
    listed = ", ".join(found)
    if "text" not in found:
        return Reject("not in text", first, key, f"listed in {listed} but has no transcript in text")
    source = located["text"]
    speaker = found["utt2spk"].value.split()[:1] if "utt2spk" in found else []
    if not speaker:
        return Reject("not in utt2spk", source, key, f"listed in {listed} but utt2spk gives it no speaker")
    if not segmented:
        return Utterance(key, found["text"].value, speaker[0], key, 0.0, None, values, source)
    if "segments" not in found:
        return Reject("not in segments", source, key, f"listed in {listed} but segments gives it no time span")
    fields = found["segments"].value.split()
    if len(fields) == 4:
        detail = f"{located['segments']} names channel {fields[3]}; the harness mixes to mono: split the channels first"
        return Reject("segment channel", source, key, detail)
    span = _span(fields)
    if span is None:
        return Reject("malformed segment", source, key, f"{located['segments']}: '{found['segments'].value}'")
    return Utterance(key, found["text"].value, speaker[0], fields[0], *span, values, source)


def _span(fields: list[str]) -> tuple[float, float | None] | None:
    """``<recording> <start> <end>`` as (start, end or None for -1), or None if malformed."""
    if len(fields) != 3:
        return None
    try:
        start, end = float(fields[1]), float(fields[2])
    except ValueError:
        return None
    if start < 0 or start != start or end != end:  # NaN compares unequal to itself
        return None
    return start, None if end == -1 else end


def tag_files(folder: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """The ``utt2*`` and ``spk2*`` files of ``folder`` that hold tags: (utterance, speaker) tag → path."""
    found: dict[str, dict[str, Path]] = {"utt": {}, "spk": {}}
    for path in sorted(folder.iterdir()):
        match = _TAG_FILE.fullmatch(path.name)
        if match is None or not path.is_file() or match.group(2) in NOT_TAGS[match.group(1)]:
            continue
        tag = match.group(2)
        if tag in RESERVED_FIELDS or tag in RESULT_COLUMNS:
            raise InputError(f"{path}: tag name '{tag}' is a reserved manifest field; rename the file")
        found[match.group(1)][tag] = path
    return found["utt"], found["spk"]


def speaker_tags(files: Mapping[str, Path]) -> dict[str, dict[str, str]]:
    """speaker → tags from the ``spk2*`` files (small: one line per speaker)."""
    tags: dict[str, dict[str, str]] = {}
    for tag, path in files.items():
        for speaker, entry in load(path).items():
            value = entry.value.strip()
            if not value:
                continue
            given = tags.setdefault(speaker, {})
            if tag == "gender":
                value = gender_code(value) or value
            given[tag] = value
            if tag == "age" and (band := age_band(value)) is not None:
                given.setdefault("age_band", band)
    return tags


def is_command(entry: str) -> bool:
    return entry.endswith("|")


def is_ark(entry: str) -> bool:
    return re.search(r"\.ark:\d+$", entry) is not None


class KaldiOptions(ImporterOptions):
    root: Path | None = Field(None, description="the directory the recipe ran in: relative wav.scp paths start there")
    language: str = Field("en", description="the manifest language of every utterance (Kaldi records none)")


class KaldiImporter(Importer):
    name = "kaldi"
    description = "Kaldi data directory: text, utt2spk, wav.scp, optional segments and utt2*/spk2* tag files"
    homepage = "https://kaldi-asr.org/doc/data_prep.html"
    licence = "that of the corpus the data directory describes"
    Options = KaldiOptions
    tags: ClassVar = {
        "gender": TagInfo("speaker gender from spk2gender (m/f as male/female)", demographic=True),
        "age": TagInfo("speaker age from spk2age, verbatim", demographic=True),
        "age_band": TagInfo("ten-year band of spk2age", demographic=True),
        "accent": TagInfo("from utt2accent or spk2accent, verbatim"),
        "dialect": TagInfo("from utt2dialect or spk2dialect, verbatim"),
        "lang": TagInfo("from utt2lang, verbatim (the manifest language is -O language)"),
    }
    options: KaldiOptions

    def __init__(self, source: Path, options: ImporterOptions, split: str | None = None) -> None:
        super().__init__(source, options, split)
        self.text = self.require("text")
        self.require("utt2spk")
        self.wav_scp = self.require(WAV_SCP)
        self.segmented = (self.source / "segments").is_file()
        if self.options.root is not None and not self.options.root.is_dir():
            raise InputError(f"-O root={self.options.root}: not a folder; name the directory the recipe ran in")
        self.utt_tags, self.spk_tags = tag_files(self.source)

    def estimate(self) -> int:
        return count_lines(self.text)

    def rows(self) -> Iterator[Record | Reject]:
        speakers = speaker_tags(self.spk_tags)
        joined = dict(self.utt_tags)
        recordings: dict[str, Entry] = {}
        if self.segmented:
            recordings = load(self.wav_scp)  # one line per recording: small
        else:
            joined[WAV_SCP] = self.wav_scp  # one line per utterance: walked in step
        for item in utterances(self.source, self.where, joined):
            if isinstance(item, Reject):
                yield item
                continue
            if self.segmented:
                found = recordings.get(item.recording)
                entry = found.value if found else None
            else:
                entry = item.joined.get(WAV_SCP)
            yield self._record(item, entry, speakers.get(item.speaker, {}))

    def _record(self, utt: Utterance, entry: str | None, speaker: Mapping[str, str]) -> Record | Reject:
        if not entry:
            return Reject("not in wav.scp", utt.source, utt.id, f"wav.scp has no recording '{utt.recording}'")
        if is_command(entry):
            detail = f"wav.scp runs a command ('{entry}'); extract the audio to files first and list those in wav.scp"
            return Reject("piped audio", utt.source, utt.id, detail)
        if is_ark(entry):
            detail = f"wav.scp points into an archive ('{entry}'); extract the audio to files first (wav-copy)"
            return Reject("audio in an ark", utt.source, utt.id, detail)
        audio = self._resolve(Path(entry))
        if audio is None:
            bases = ", ".join(str(base) for base in self._bases())
            detail = f"no file {entry} relative to {bases}; pass -O root=DIR, the directory the recipe ran in"
            return Reject("missing audio", utt.source, utt.id, detail)
        tags = {**speaker, **{tag: value.strip() for tag, value in utt.joined.items() if tag != WAV_SCP}}
        return Record(
            id=utt.id,
            audio=audio,
            text=utt.text,
            speaker=utt.speaker,
            tags={tag: value for tag, value in tags.items() if value},
            offset=utt.start if self.segmented else None,
            duration=None if utt.end is None else utt.end - utt.start,
            language=self.options.language,
            source=utt.source,
        )

    def _bases(self) -> list[Path]:
        if self.options.root is not None:
            return [self.options.root]
        folder = self.source.absolute()
        return [folder, folder.parent, folder.parent.parent]

    def _resolve(self, path: Path) -> Path | None:
        """An absolute path as is; a relative one under the first base that holds it. With -O root
        a missing file still resolves (the writer rejects it, naming the path tried)."""
        if path.is_absolute():
            return path
        bases = self._bases()
        for base in bases:
            if (base / path).is_file():
                return base / path
        return bases[0] / path if self.options.root is not None else None
