"""Dataset manifests: one record per utterance, tagged with accent, dialect, device, noise.

JSONL is canonical (one object per line); CSV with a header row is accepted. Paths in
``audio`` are relative to the manifest file unless absolute, and must lie inside the manifest's
folder once ``..`` and symlinks are resolved, unless the reader names more ``audio_roots``: a
manifest from someone else cannot make a run read (and upload to a cloud API) any file on the
machine. Every field that is not one of
the reserved fields is a tag and must be a string. A ``dataset.yaml`` beside the manifest may
declare each tag's vocabulary; a value outside it is an error, so a typo never becomes a
new group.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import soundfile as sf

from harness.errors import InputError, one_line
from harness.files import replace_quietly
from harness.yamlfile import read_yaml

RESERVED_FIELDS = ("id", "audio", "text", "speaker", "language", "offset", "duration")
# Columns of the per-utterance results table; a tag may not take one of these names.
RESULT_COLUMNS = (
    "status",
    "error",
    "reference",
    "hypothesis",
    "ref_norm",
    "hyp_norm",
    "hits",
    "substitutions",
    "deletions",
    "insertions",
    "ref_words",
    "errors",
    "wer",
    "runaway",
    "audio_s",
)
NAMED_TAGS = ("accent", "dialect", "device", "noise")
DATASET_CARD = "dataset.yaml"


@dataclass(frozen=True, slots=True)
class Utterance:
    """One manifest record. ``audio`` is resolved to an absolute path."""

    id: str
    audio: Path
    text: str
    speaker: str | None = None
    language: str | None = "en"  # None only from `serve` with no language: the backend detects it
    offset: float = 0.0
    duration: float | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Problem:
    """A validation finding, located by file, line and field."""

    level: Literal["error", "warning"]
    file: Path
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        fld = f" field '{self.field}'" if self.field else ""
        return one_line(f"{where}:{fld} {self.level}: {self.message}")  # ids and keys may hold newlines


@dataclass(frozen=True)
class Manifest:
    """A loaded manifest and what validation found."""

    path: Path
    utterances: tuple[Utterance, ...]
    problems: tuple[Problem, ...]
    sha256: str
    # each audio file's length as its header gives it (frames / sample rate), for the files
    # libsndfile reads: what clip_seconds would read again for every utterance
    file_seconds: Mapping[Path, float] = field(default_factory=dict, compare=False)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]

    @property
    def tag_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for utt in self.utterances:
            seen.update(dict.fromkeys(utt.tags))
        return list(seen)


def load_manifest(
    path: str | Path,
    *,
    check_audio: bool = True,
    audio_roots: Sequence[Path] | None = (),
    probes: Path | None = None,
) -> Manifest:
    """Load and validate a manifest; raise :class:`InputError` naming the first error."""
    manifest = read_manifest(path, check_audio=check_audio, audio_roots=audio_roots, probes=probes)
    if manifest.errors:
        first = manifest.errors[0]
        more = len(manifest.errors) - 1
        suffix = f" (and {more} more; run 'asrfair validate {manifest.path}')" if more else ""
        raise InputError(f"{first}{suffix}")
    return manifest


def read_manifest(
    path: str | Path,
    *,
    check_audio: bool = True,
    audio_roots: Sequence[Path] | None = (),
    probes: Path | None = None,
) -> Manifest:
    """Read a manifest, collecting every problem instead of stopping at the first.

    Audio must resolve inside the manifest's folder or one of ``audio_roots``; ``None`` lifts the
    rule, for readers that never open the audio (coverage counts tags only). ``probes``: a JSON
    file of audio files already found whole (:class:`AudioProbes`), so a rerun opens none again.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: manifest not found; pass the path to a .jsonl or .csv file")
    roots = None if audio_roots is None else audio_roots_of(path, audio_roots)
    raw = path.read_bytes()
    problems: list[Problem] = []
    vocabulary = read_vocabulary(path.parent / DATASET_CARD)
    seen_ids: dict[str, int] = {}
    utterances: list[Utterance] = []
    durations: dict[Path, float | str] = {}
    known = AudioProbes(probes)
    resolved: dict[str, Path] = {}  # each distinct audio path resolved once: many segments share a file
    rows = _csv_rows(path, raw) if path.suffix.lower() == ".csv" else _jsonl_rows(path, raw)
    for line, row in rows:
        if isinstance(row, Problem):
            problems.append(row)
            continue
        utt, found = _parse_record(path, line, row, vocabulary, resolved)
        if utt is not None and roots is not None and not is_inside(utt.audio, roots):
            found.append(_outside_problem(path, line, row["audio"], utt.audio))
            utt = None
        problems.extend(found)
        row_id = row.get("id")
        if isinstance(row_id, str):
            if row_id in seen_ids:
                problems.append(
                    Problem(
                        "error",
                        path,
                        line,
                        "id",
                        f"duplicate id '{row_id}' (first on line {seen_ids[row_id]}); ids must be unique",
                    )
                )
                continue
            seen_ids[row_id] = line
        if utt is None:
            continue
        if check_audio:
            problems.extend(_check_audio(path, line, utt, durations, known))
        utterances.append(utt)
    if not utterances and not any(p.level == "error" for p in problems):
        problems.append(Problem("error", path, 0, None, "manifest has no utterances"))
    known.save()
    return Manifest(path, tuple(utterances), tuple(problems), hashlib.sha256(raw).hexdigest(), known.seconds)


class AudioProbes:
    """Audio files found readable to their last frame, keyed on path, size and modification time
    (ns): a file that is rewritten, truncated or replaced changes its size or time and is opened
    and checked again. Only whole files are kept, so a problem is always found afresh.
    ``seconds``: each file's frames / sample rate, probed now or before."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.seconds: dict[Path, float] = {}
        self._found: dict[str, list[int]] = {}  # path: [size, mtime_ns, frames, sample rate]
        self._read: dict[str, list[int]] = {}
        if path is not None:
            with contextlib.suppress(OSError, ValueError):
                read = json.loads(path.read_text(encoding="utf-8"))
                self._read = read if isinstance(read, dict) else {}

    def lookup(self, audio: Path, status: os.stat_result) -> float | None:
        entry = self._read.get(str(audio))
        whole = isinstance(entry, list) and len(entry) == 4 and all(type(n) is int for n in entry) and entry[3] > 0
        if not (whole and entry[:2] == [status.st_size, status.st_mtime_ns]):
            return None
        return self.keep(audio, status, entry[2], entry[3])

    def keep(self, audio: Path, status: os.stat_result, frames: int, rate: int) -> float:
        self._found[str(audio)] = [status.st_size, status.st_mtime_ns, frames, rate]
        self.seconds[audio] = frames / rate
        return frames / rate

    def save(self) -> None:
        """Write what this manifest's files are now (when it changed; a failed write only costs a rerun the probe)."""
        if self.path is None or all(self._read.get(name) == entry for name, entry in self._found.items()):
            return
        replace_quietly(self.path, json.dumps({**self._read, **self._found}))  # other manifests' files stay


def _file_duration(audio: Path, known: AudioProbes) -> float | str:
    """Seconds of audio in the file, or the one-line problem with it."""
    if not audio.is_file():
        return f"audio file not found: {audio}; paths are relative to the manifest"
    status = audio.stat()
    seconds = known.lookup(audio, status)
    if seconds is not None:
        return seconds
    try:
        info = sf.info(str(audio))
    except (sf.LibsndfileError, RuntimeError) as exc:
        from harness.data.audio import probe_duration  # fallback decoder; imported only when needed

        duration = probe_duration(audio)
        return f"cannot read {audio} ({exc}); convert it to WAV or FLAC" if duration is None else duration
    duration = info.frames / info.samplerate if info.samplerate else 0.0
    if info.frames and not _last_frame_readable(audio, info.frames):
        message = f"{audio} is truncated: its header promises {duration:.2f}s that the file does not hold"
        return f"{message}; copy or download it again"
    if info.samplerate:
        known.keep(audio, status, info.frames, info.samplerate)
    return duration


def audio_roots_of(manifest: Path, extra: Sequence[Path]) -> tuple[Path, ...]:
    """The folders a manifest's audio may come from: its own, and those the user allows."""
    return tuple(root.resolve() for root in (manifest.parent, *extra))


def is_inside(audio: Path, roots: Sequence[Path]) -> bool:
    """``audio.is_relative_to(root)`` for some root, on strings (paths already resolved): a tenth of the CPU."""
    text = str(audio)
    return any(text == str(root) or text.startswith(str(root).rstrip(os.sep) + os.sep) for root in roots)


def _outside_problem(path: Path, line: int, given: object, resolved: Path) -> Problem:
    return Problem(
        "error",
        path,
        line,
        "audio",
        f"{given} resolves to {resolved}, outside the manifest's folder; move the audio under "
        f"{path.parent.resolve()}, or allow its folder with 'audio_roots:' in the run config "
        "(--audio-root for validate)",
    )


def _decode(path: Path, raw: bytes, encoding: str) -> str | Problem:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        return Problem("error", path, 0, None, f"not UTF-8 ({exc.reason}); re-save as UTF-8")


class _DuplicateKey(ValueError):
    """A JSON object naming one key twice: ``json`` would keep the last value silently."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row = dict(pairs)
    if len(row) != len(pairs):
        raise _DuplicateKey(json.dumps(next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i]))))
    return row


def _jsonl_rows(path: Path, raw: bytes) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    text = _decode(path, raw, "utf-8-sig")  # tolerate a byte-order mark
    if isinstance(text, Problem):
        yield 0, text
        return
    # Split on newlines only: str.splitlines() also breaks on U+2028 and other characters
    # that are legal inside a JSON string.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:
            yield number, Problem("error", path, number, None, f"key {exc} appears twice; keep one")
            continue
        except json.JSONDecodeError as exc:
            yield (
                number,
                Problem(
                    "error",
                    path,
                    number,
                    None,
                    f"bad JSON: {exc.msg} at column {exc.colno}; each line must be one JSON object",
                ),
            )
            continue
        except (ValueError, RecursionError) as exc:  # an integer over 4300 digits; nesting past the stack
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(":")[0]
            yield number, Problem("error", path, number, None, f"bad JSON: {reason}; each line must be one JSON object")
            continue
        if not isinstance(row, dict):
            yield number, Problem("error", path, number, None, f"expected a JSON object, got {type(row).__name__}")
            continue
        if "\\u" in line and (bad := _lone_surrogate(row)) is not None:  # only a \u escape can make one
            message = "holds a lone surrogate escape (such as \\ud800), which is not text; fix the escape"
            yield number, Problem("error", path, number, bad, message)
            continue
        yield number, row


def _csv_rows(path: Path, raw: bytes) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    text = _decode(path, raw, "utf-8-sig")  # Excel writes a byte-order mark
    if isinstance(text, Problem):
        yield 0, text
        return
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)  # keeps newlines inside quoted cells
    try:
        header = next(reader, [])
    except csv.Error as exc:  # a malformed header row (a stray quote)
        line = reader.line_num or 1
        message = f'bad CSV header: {exc}; inside a quoted cell write a quote as ""'
        yield line, Problem("error", path, line, None, message)
        return
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        yield 1, Problem("error", path, 1, None, f"duplicate column(s) {', '.join(duplicated)}; rename one")
        return
    while True:
        start = reader.line_num + 1  # the row's first line: blank lines and quoted newlines counted
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, Problem("error", path, start, None, f"bad CSV in the row starting here: {exc}")
            return
        if not cells:
            continue  # a blank line
        if len(cells) > len(header):
            message = "more cells than header columns; quote cells that contain commas"
            yield start, Problem("error", path, start, None, message)
            continue
        # Empty cells mean "absent" in CSV; numbers arrive as text.
        yield start, {k: v for k, v in zip(header, cells, strict=False) if v != ""}


def _parse_record(
    path: Path,
    line: int,
    row: Mapping[str, Any],
    vocabulary: Mapping[str, frozenset[str]],
    resolved: dict[str, Path],
) -> tuple[Utterance | None, list[Problem]]:
    problems: list[Problem] = []

    def error(fld: str | None, message: str) -> None:
        problems.append(Problem("error", path, line, fld, message))

    for required in ("id", "audio", "text"):
        if required not in row:
            error(required, f"missing required field '{required}'")
    utt_id, audio, text = row.get("id"), row.get("audio"), row.get("text")
    if "id" in row and (not isinstance(utt_id, str) or not utt_id.strip()):
        error("id", "id must be a non-empty string")
    if "audio" in row and (not isinstance(audio, str) or not audio.strip()):
        error("audio", "audio must be a path string")
    elif isinstance(audio, str) and not usable_path(audio):
        error("audio", f"audio path {json.dumps(audio)} holds a NUL or a lone surrogate, which no file name can")
    if "text" in row:
        if not isinstance(text, str):
            error("text", "reference text must be a string")
        elif not text.strip():
            error("text", "empty reference; give the transcript or drop the utterance")

    speaker = row.get("speaker")
    if speaker is None:
        problems.append(
            Problem(
                "warning",
                path,
                line,
                "speaker",
                "no speaker; this utterance counts as its own speaker in speaker counts and clustering",
            )
        )
    elif not isinstance(speaker, str) or not speaker.strip():
        error("speaker", "speaker must be a non-empty string")
        speaker = None

    language = row.get("language", "en")
    if not isinstance(language, str) or not language.strip():
        error("language", "language must be a code such as 'en'")

    offset = _number(row, "offset", 0.0, error)
    duration = _number(row, "duration", None, error)
    if duration is not None and duration <= 0:
        error("duration", "duration must be > 0 seconds")

    tags: dict[str, str] = {}
    for key, value in row.items():
        if key in RESERVED_FIELDS:
            continue
        if key in RESULT_COLUMNS:
            error(key, f"'{key}' is a results column and cannot be a tag name; rename the field")
            continue
        if not isinstance(value, str):
            shown = json.dumps(value)
            error(key, f'tag values must be strings, got {shown}; quote it ("{value}") or remove the field')
            continue
        allowed = vocabulary.get(key)
        if allowed is not None and value not in allowed:
            error(
                key,
                f"'{value}' is not in the vocabulary declared in {DATASET_CARD} "
                f"({', '.join(sorted(allowed))}); fix the value or declare it",
            )
            continue
        tags[key] = value

    if any(p.level == "error" for p in problems):
        return None, problems
    key = str(audio)
    if key not in resolved:
        audio_path = Path(key)
        if not audio_path.is_absolute():
            audio_path = path.parent / audio_path
        try:
            audio_path = audio_path.resolve()
            audio_path.is_file()  # answers False for most failures but raises for a name too long
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "a symlink loop"
            shown = json.dumps(audio if len(audio) <= 80 else audio[:80] + "...")
            error("audio", f"audio path {shown} cannot be opened ({reason}); fix the path")
            return None, problems
        resolved[key] = audio_path
    utt = Utterance(
        id=str(utt_id),
        audio=resolved[key],
        text=str(text),
        speaker=speaker,
        language=str(language),
        offset=float(offset or 0.0),
        duration=duration,
        tags=tags,
    )
    return utt, problems


def _lone_surrogate(row: Mapping[str, Any]) -> str | None:
    """The field whose key or value holds an unpaired surrogate (UTF-8 cannot store it: the cache,
    the results table and the terminal would fail on it later), shown with the escape spelled out."""
    for key, value in row.items():
        try:
            json.dumps([key, value], ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return key.encode("utf-8", "backslashreplace").decode("utf-8")
    return None


def usable_path(text: str) -> bool:
    """False where the OS cannot take the name: a NUL, or a surrogate that is not an undecodable byte."""
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _number(row: Mapping[str, Any], key: str, default: float | None, error: Any) -> float | None:
    if key not in row:
        return default
    value = row[key]
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = math.inf
    except (TypeError, ValueError):
        error(key, f"{key} must be a number of seconds, got {json.dumps(value)}")
        return default
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        error(key, f"{key} must be a finite number of seconds >= 0, got {json.dumps(value)}")
        return default
    return number


def _check_audio(
    path: Path, line: int, utt: Utterance, durations: dict[Path, float | str], known: AudioProbes
) -> list[Problem]:
    """The segment lies inside a readable file; each file is opened once per manifest (``durations``
    holds its length or why it cannot be read), however many segments it holds."""
    shown = utt.audio
    if utt.audio not in durations:
        durations[utt.audio] = _file_duration(utt.audio, known)
    duration = durations[utt.audio]
    if isinstance(duration, str):
        return [Problem("error", path, line, "audio", duration)]
    end = utt.offset + (utt.duration or 0.0)
    if end > duration + 0.01 or utt.offset >= duration:
        return [
            Problem(
                "error",
                path,
                line,
                "offset",
                f"segment {utt.offset:.2f}s+{utt.duration or 0:.2f}s lies outside {shown} ({duration:.2f}s long)",
            )
        ]
    return []


def _last_frame_readable(audio: Path, frames: int) -> bool:
    """A truncated FLAC (or WAV) keeps its header's length; seeking to its last frame fails."""
    try:
        with sf.SoundFile(str(audio)) as sound:
            sound.seek(frames - 1)
            return len(sound.read(1)) == 1
    except (sf.LibsndfileError, RuntimeError, OSError):
        return False


def read_vocabulary(card: Path) -> dict[str, frozenset[str]]:
    """Tag vocabularies from ``dataset.yaml``: ``tags: {accent: {values: [...]}}``."""
    if not card.is_file():
        return {}
    data = read_yaml(card, "dataset card") or {}
    tags = data.get("tags", {}) if isinstance(data, dict) else {}
    if not isinstance(tags, dict):
        raise InputError(f"{card}: field 'tags' must map tag names to {{values: [...]}}")
    vocab: dict[str, frozenset[str]] = {}
    for name, spec in tags.items():
        values = spec.get("values") if isinstance(spec, dict) else spec
        if values is None:
            continue
        if not isinstance(values, list):
            raise InputError(f"{card}: tags.{name}.values must be a list of strings")
        vocab[str(name)] = frozenset(str(v) for v in values)
    return vocab
