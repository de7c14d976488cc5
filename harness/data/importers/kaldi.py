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
* ``wav.scp`` entries that run a command (ending in ``|``) are never run (a data directory that
  made the harness execute what it holds would be a hole): the well-known decoders recipes write,
  ``sox IN -t wav - [trim S D]``, ``ffmpeg -i IN ... pipe:1`` (lhotse's ``export_to_kaldi``) and
  ``flac -c -d -s IN`` (LibriSpeech), are read as the file they decode, with the stretch a trim
  keeps as offset/duration (see :func:`parse_pipe`); any other command is rejected with the reason.
  Entries pointing into an ark (``x.ark:123``) are rejected: extract them to files first. A path
  may hold spaces (the value is the rest of the line). A relative path is relative to the directory the
  recipe ran in, which the data directory does not record: ``-O root=DIR`` names it; otherwise
  the data directory, its parent and its grandparent (a recipe root above ``data/test``) are
  tried in turn, the first holding the file wins.
* ``utt2<name>`` files (``utt2accent``, ``utt2dialect``, ``utt2lang``...) give a tag ``<name>``
  per utterance, joined in step; ``spk2<name>`` files (``spk2gender``...) give speaker tags and
  are loaded (one line per speaker). ``m``/``f`` in ``spk2gender`` or ``utt2gender`` (lhotse's
  ``export_to_kaldi`` writes the latter) become ``male``/``female``; ``spk2age`` adds ``age_band``.
  An utterance tag overrides a speaker tag of the same name.
  Not tags, skipped: ``utt2spk`` (the speaker), ``utt2dur``, ``utt2num_frames``, ``utt2uniq``,
  ``utt2warp``, ``spk2utt``, ``spk2warp``, and every ``reco2*`` file (``reco2file_and_channel``,
  ``reco2dur``...: bookkeeping, not speaker or recording attributes).
* An utterance missing from ``text`` or ``utt2spk`` (or, with segments, from ``segments``) is
  rejected with the file it is missing from; a ``segments`` line with a fifth (channel) field is
  rejected, since the harness mixes every file down to mono.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import soundfile
from pydantic import Field

from harness.data.importers.base import (
    Importer,
    ImporterOptions,
    Record,
    Reject,
    TagInfo,
    age_band,
    count_lines,
    gender_code,
)
from harness.data.manifest import RESERVED_FIELDS, RESULT_COLUMNS
from harness.errors import InputError

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
            if entry.value.strip():
                given = tags.setdefault(speaker, {})
                for name, value in tag_pairs(tag, entry.value):
                    given.setdefault(name, value)
    return tags


def tag_pairs(tag: str, value: str) -> list[tuple[str, str]]:
    """A tag file's value as tags: gender codes as words (base.gender_code), an age with its band."""
    value = value.strip()
    if tag == "gender":
        return [(tag, gender_code(value) or value)]
    band = age_band(value) if tag == "age" else None
    return [(tag, value), ("age_band", band)] if band else [(tag, value)]


def _stretch(piped: Piped, start: float, end: float | None) -> tuple[float, float | None]:
    """Offset and duration in the file of the utterance ``start``-``end`` (``end`` None: to the end)
    of the audio a pipe decodes, which may itself be a stretch of the file (a trim)."""
    if end is not None:
        return piped.offset + start, end - start
    return piped.offset + start, None if piped.duration is None else piped.duration - start


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
        "gender": TagInfo("gender from spk2gender or utt2gender (m/f as male/female)", demographic=True),
        "age": TagInfo("speaker age from spk2age, verbatim", demographic=True),
        "age_band": TagInfo("ten-year band of spk2age", demographic=True),
        "accent": TagInfo("from utt2accent or spk2accent, verbatim"),
        "dialect": TagInfo("from utt2dialect or spk2dialect, verbatim"),
        "lang": TagInfo("from utt2lang, verbatim (the manifest language is -O language)"),
    }
    options: KaldiOptions

    def __init__(self, source: Path, options: ImporterOptions, split: str | None = None) -> None:
        super().__init__(source, options, split)
        self._channels: dict[Path, int | None] = {}  # audio file → channel count (None: unreadable)
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
        piped = Piped(entry)
        if is_command(entry):
            parsed = parse_pipe(entry)
            if isinstance(parsed, str):
                detail = f"wav.scp runs '{entry}': {parsed}; extract the audio to files first and list those"
                return Reject("piped audio", utt.source, utt.id, detail)
            piped = parsed
        elif is_ark(entry):
            detail = f"wav.scp points into an archive ('{entry}'); extract the audio to files first (wav-copy)"
            return Reject("audio in an ark", utt.source, utt.id, detail)
        audio = self._resolve(Path(piped.audio))
        if audio is None:
            bases = ", ".join(str(base) for base in self._bases())
            detail = f"no file {piped.audio} relative to {bases}; pass -O root=DIR, the directory the recipe ran in"
            return Reject("missing audio", utt.source, utt.id, detail)
        if piped.channel is not None and self._channel_count(audio) not in (None, 1):
            detail = f"'{entry}' picks channel {piped.channel + 1} of {audio}; the harness mixes to mono: split it"
            return Reject("one channel of a multi-channel file", utt.source, utt.id, detail)
        tags: dict[str, str] = dict(speaker)
        for tag, value in utt.joined.items():
            if tag != WAV_SCP and value.strip():
                tags.update(tag_pairs(tag, value))
        offset, duration = _stretch(piped, utt.start, utt.end)
        return Record(
            id=utt.id,
            audio=audio,
            text=utt.text,
            speaker=utt.speaker,
            tags=tags,
            offset=offset or None,
            duration=duration,
            language=self.options.language,
            source=utt.source,
        )

    def _channel_count(self, audio: Path) -> int | None:
        """Channels of ``audio`` (its header, read once per file); None where it cannot be read (the
        writer or validate names that)."""
        if audio not in self._channels:
            try:
                self._channels[audio] = soundfile.info(str(audio)).channels
            except (RuntimeError, OSError):  # soundfile.LibsndfileError is a RuntimeError
                self._channels[audio] = None
        return self._channels[audio]

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


# -- piped wav.scp entries: understood, never run ---------------------------------------------------------------

SHELL_SYNTAX = re.compile(r"[;&`$<>|]")  # a second stage, redirection, substitution: not one decoder
SOX_VALUE_OPTIONS = frozenset({"-r", "-b", "-c", "-e", "-t", "-C", "-v", "--rate", "--bits", "--channels",
                               "--encoding", "--type", "--compression", "--volume", "--buffer"})  # fmt: skip
SOX_EFFECTS = frozenset({"trim", "rate", "remix", "channels", "dither"})  # timing and format only
FFMPEG_VALUE_OPTIONS = frozenset({"-threads", "-ar", "-ac", "-f", "-acodec", "-c:a", "-codec:a", "-sample_fmt",
                                  "-loglevel", "-v", "-map_channel", "-ss", "-t", "-to", "-i"})  # fmt: skip
FFMPEG_FLAGS = frozenset({"-nostdin", "-y", "-hide_banner", "-vn", "-nostats"})
FFMPEG_OUTPUTS = frozenset({"pipe:1", "pipe:", "-"})
FLAC_FLAGS = frozenset({"-c", "-d", "-s", "--stdout", "--decode", "--silent"})
PIPE_FIXES = {
    "sph2pipe": "NIST SPHERE is often shorten-compressed, which the harness cannot decode (sph2pipe -f wav IN "
    "OUT.wav converts a file)",
}


@dataclass(frozen=True, slots=True)
class Piped:
    """What a ``sox``/``ffmpeg``/``flac`` pipe in ``wav.scp`` decodes: which file, and which stretch of it."""

    audio: str
    offset: float = 0.0
    duration: float | None = None  # None: to the end of the file
    channel: int | None = None  # a channel the pipe picks (0-based); None: all, mixed as the harness does


def parse_pipe(entry: str) -> Piped | str:
    """A ``wav.scp`` command (``... |``) as the file it decodes, or why it cannot be read without running it.

    Only one-stage ``sox IN [opts] -t wav - [trim S [D]] [rate R] [remix N]``, ``ffmpeg [-ss S] [-t D]
    -i IN [-ar R] [-map_channel 0.0.N] -f wav pipe:1`` (lhotse's ``export_to_kaldi``) and ``flac -c -d -s IN``
    (LibriSpeech) are understood; resampling and format options are dropped (the harness resamples). The
    command is never run: a manifest must not make the harness execute what it holds.
    """
    command = entry.rstrip()[:-1].strip()
    first = Path(command.split(maxsplit=1)[0]).name if command else ""
    if first in PIPE_FIXES:
        return PIPE_FIXES[first]
    if SHELL_SYNTAX.search(command):
        return "more than one command, or shell syntax; only a single sox, ffmpeg or flac decoder is understood"
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return f"cannot split the command ({exc})"
    if not words:
        return "an empty command"
    tool = Path(words[0]).name
    parser = {"sox": _sox, "ffmpeg": _ffmpeg, "flac": _flac}.get(tool)
    if parser is None:
        return PIPE_FIXES.get(tool, f"'{tool}' is not a decoder the importer understands (sox, ffmpeg, flac)")
    try:
        return parser(words[1:])
    except (ValueError, IndexError) as exc:
        return f"{tool}: {exc}"


def _seconds(text: str) -> float:
    """``12.5``, ``1:02.5`` or ``0:01:02.5`` as seconds (sox and ffmpeg time syntax; no sample counts)."""
    parts = text.split(":")
    if len(parts) > 3 or not all(re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", part) for part in parts):
        raise ValueError(f"time '{text}' is not seconds or [hh:]mm:ss")
    return sum(float(part) * 60**power for power, part in enumerate(reversed(parts)))


def _sox(args: list[str]) -> Piped:
    files: list[str] = []
    index = 0
    while index < len(args) and len(files) < 2:
        word = args[index]
        if word in SOX_VALUE_OPTIONS:
            index += 2
            continue
        if word.startswith("-") and word != "-":
            index += 1  # a flag (-q, -G, -V3, --norm) or --option=value
            continue
        files.append(word)
        index += 1
    if len(files) < 2 or files[1] != "-" or files[0] == "-":
        raise ValueError("expected 'sox IN ... -' writing to standard output")
    offset, duration, channel = 0.0, None, None
    effects = args[index:]
    while effects:
        name = effects.pop(0)
        values = []
        while effects and effects[0] not in SOX_EFFECTS:
            values.append(effects.pop(0))
        if name not in SOX_EFFECTS:
            raise ValueError(f"effect '{name}' changes the audio; only trim, rate, remix N, channels 1 are understood")
        if name == "trim":
            if not 1 <= len(values) <= 2 or offset:
                raise ValueError(f"'trim {' '.join(values)}': expected one trim START [LENGTH]")
            offset = _seconds(values[0])
            if len(values) == 2:
                end = values[1]
                duration = _seconds(end[1:]) - offset if end.startswith("=") else _seconds(end)
                if duration <= 0:
                    raise ValueError(f"'trim {' '.join(values)}' keeps nothing")
        elif name == "remix":
            if len(values) != 1 or not values[0].isdigit() or int(values[0]) < 1:
                raise ValueError(f"'remix {' '.join(values)}': only one channel by number is understood")
            channel = int(values[0]) - 1
        elif name == "channels" and values != ["1"]:
            raise ValueError(f"'channels {' '.join(values)}': only channels 1 (a mix to mono) is understood")
    return Piped(files[0], offset, duration, channel)


def _ffmpeg(args: list[str]) -> Piped:
    values: dict[str, str] = {}
    index = 0
    while index < len(args) - 1:
        word = args[index]
        if word in FFMPEG_FLAGS:
            index += 1
        elif word in FFMPEG_VALUE_OPTIONS:
            if word in values and word != "-threads":  # -threads comes twice in lhotse's commands
                raise ValueError(f"'{word}' given twice")
            values[word] = args[index + 1]
            index += 2
        else:
            raise ValueError(f"option '{word}' is not understood (filters and mapping change what is decoded)")
    if index != len(args) - 1 or args[-1] not in FFMPEG_OUTPUTS or "-i" not in values:
        raise ValueError("expected 'ffmpeg ... -i IN ... pipe:1' writing to standard output")
    if values["-i"] in ("-", "pipe:", "pipe:0"):
        raise ValueError("it reads standard input, which another command feeds")
    offset = _seconds(values["-ss"]) if "-ss" in values else 0.0
    duration = _seconds(values["-t"]) if "-t" in values else None
    if "-to" in values:
        end = _seconds(values["-to"])
        duration = end - offset if duration is None else min(duration, end - offset)
    channel = None
    if "-map_channel" in values:
        match = re.fullmatch(r"0\.0\.(\d+)", values["-map_channel"])
        if match is None:
            raise ValueError(f"-map_channel {values['-map_channel']}: only 0.0.N (a channel of the input) is read")
        channel = int(match.group(1))
    if duration is not None and duration <= 0:
        raise ValueError("the trimmed stretch is empty")
    return Piped(values["-i"], offset, duration, channel)


def _flac(args: list[str]) -> Piped:
    files = [word for word in args if word not in FLAC_FLAGS]
    if len(files) != 1 or files[0].startswith("-") or not {"-d", "--decode"} & set(args):
        raise ValueError("expected 'flac -c -d -s IN' decoding one file to standard output")
    return Piped(files[0])
