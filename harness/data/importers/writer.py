"""Stream an importer's rows into a manifest, a rejects file and a dataset card.

One pass, constant memory: each record is checked (audio exists, transcript has a word),
mapped (``--map``), counted and written as one JSONL line; each reject is written to the rejects
file. Both files are written beside their targets and renamed into place at the end, so an
interrupted or failed import leaves the previous manifest untouched, never half of a new one.
Only counters are kept: rows per reject reason, utterances per tag value, the set of speakers.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.data.importers.base import Importer, Record, Reject
from harness.data.importers.tagmap import TagMap
from harness.data.manifest import DATASET_CARD, RESERVED_FIELDS, RESULT_COLUMNS
from harness.errors import InputError
from harness.files import write_atomic, write_yaml
from harness.yamlfile import read_yaml

CARD_GENERATOR = "asrfair import"
PROGRESS_EVERY = 500  # rows between progress updates: a callback per row would cost more than the row


@dataclass
class ImportSummary:
    format: str
    source: Path
    manifest: Path
    split: str | None = None
    rows: int = 0
    written: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    speakers: set[str] = field(default_factory=set)
    tags: dict[str, Counter[str]] = field(default_factory=dict)
    unmapped: dict[str, Counter[str]] = field(default_factory=dict)
    rejects: Path | None = None
    card: Path | None = None
    card_kept: bool = False  # a hand-written dataset.yaml was there and left alone
    audio_outside: Path | None = None  # a folder of audio outside the manifest's: needs audio_roots

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "source": str(self.source),
            "split": self.split,
            "manifest": str(self.manifest),
            "rows": self.rows,
            "utterances": self.written,
            "rejected": dict(self.rejected.most_common()),
            "speakers": len(self.speakers),
            "tags": {tag: dict(counts.most_common()) for tag, counts in self.tags.items()},
            "unmapped": {tag: dict(counts.most_common()) for tag, counts in self.unmapped.items()},
            "rejects": str(self.rejects) if self.rejects else None,
            "dataset_card": str(self.card) if self.card else None,
            "audio_root": str(self.audio_outside) if self.audio_outside else None,
        }


def import_corpus(
    importer: Importer,
    manifest: Path,
    *,
    tag_map: TagMap | None = None,
    rejects: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Write ``manifest`` (and the rejects, and the dataset card) from ``importer``'s rows.

    Rejects go to ``rejects``, or, where rows were rejected and none was named, to
    ``<manifest>.rejects.jsonl`` beside the manifest: a rejected row is never only a count.
    """
    if manifest.exists() and not manifest.is_file():  # its rejects and dataset card would land beside it
        raise InputError(f"-o {manifest}: not a regular file; name the manifest file to write")
    manifest.parent.mkdir(parents=True, exist_ok=True)
    default_rejects = manifest.with_name(f"{manifest.stem}.rejects.jsonl")
    rejects_path = rejects or default_rejects
    importer.set_output(manifest)
    summary = ImportSummary(importer.name, importer.source, manifest, importer.split)

    def write_both(manifest_tmp: Path) -> None:
        write_atomic(rejects_path, lambda tmp: _stream(importer, manifest_tmp, tmp, summary, tag_map, progress))

    write_atomic(manifest, write_both)
    if rejects is None and not summary.rejected:
        rejects_path.unlink(missing_ok=True)  # none this time: a stale file from an earlier import would mislead
    else:
        summary.rejects = rejects_path
    if not summary.written:
        manifest.unlink(missing_ok=True)
        reasons = ", ".join(f"{n} {reason}" for reason, n in summary.rejected.most_common()) or "the source has no rows"
        raise InputError(f"{importer.source}: no utterances imported ({reasons}); see {rejects_path}")
    summary.card, summary.card_kept = _write_card(importer, summary, tag_map)
    return summary


def _stream(
    importer: Importer,
    manifest_tmp: Path,
    rejects_tmp: Path,
    summary: ImportSummary,
    tag_map: TagMap | None,
    progress: Callable[[int], None] | None,
) -> None:
    folder = str(manifest_tmp.parent.resolve())
    audio_exists = _ExistsCache()
    with manifest_tmp.open("w", encoding="utf-8") as out, rejects_tmp.open("w", encoding="utf-8") as bad:
        for item in _read(importer):
            summary.rows += 1
            if progress is not None and summary.rows % PROGRESS_EVERY == 0:
                progress(PROGRESS_EVERY)
            if isinstance(item, Record):
                item = _checked(item, audio_exists)
            if isinstance(item, Reject):
                summary.rejected[item.reason] += 1
                bad.write(_json_line({k: v for k, v in _reject_json(item).items() if v not in (None, "")}))
                continue
            out.write(_json_line(_manifest_row(item, folder, tag_map, summary)))
        if progress is not None:
            progress(summary.rows % PROGRESS_EVERY)


def _read(importer: Importer) -> Iterator[Record | Reject]:
    """The importer's rows; a source file that cannot be read is the user's error, not a write error."""
    try:
        yield from importer.rows()
    except OSError as exc:
        where = exc.filename or importer.source
        raise InputError(f"{where}: cannot read ({exc.strerror or exc}); check the corpus files") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{importer.source}: a file is not UTF-8 ({exc.reason}); re-save it as UTF-8") from None


class _ExistsCache:
    """Segments of one long recording arrive together: stat each file once, not once per segment."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._exists = False

    def __call__(self, path: Path) -> bool:
        if path != self._path:
            self._path, self._exists = path, os.path.isfile(path)
        return self._exists


def _checked(record: Record, audio_exists: _ExistsCache) -> Record | Reject:
    """The checks every corpus needs; a record that fails one becomes a reject with its reason."""
    text = " ".join(record.text.split())  # a transcript is one line of single-spaced words
    if not record.id.strip():
        return Reject("no utterance id", record.source, None, "the source row gives no id")
    if not any(char.isalnum() for char in text):  # '""' or '-' normalises to no words: nothing to score
        detail = f"text {record.text!r}, audio {record.audio}" if text else f"audio {record.audio}"
        return Reject("empty transcript", record.source, record.id, detail)
    if not audio_exists(record.audio):
        return Reject("missing audio", record.source, record.id, f"no file {record.audio}")
    if record.duration is not None and record.duration <= 0:
        return Reject("empty segment", record.source, record.id, f"duration {record.duration} s")
    return record if text == record.text else replace(record, text=text)


def _manifest_row(record: Record, folder: str, tag_map: TagMap | None, summary: ImportSummary) -> dict[str, Any]:
    audio = os.path.abspath(record.audio)  # string operations: pathlib's cost per row is most of an import's time
    inside = folder + os.sep
    if audio.startswith(inside):
        shown = audio[len(inside) :].replace(os.sep, "/")
    else:
        shown = audio
        outside = summary.audio_outside
        if outside is None or not audio.startswith(str(outside) + os.sep):
            summary.audio_outside = _audio_root(outside, Path(audio), summary.source.resolve())
    tags = dict(record.tags)
    if tag_map is not None:
        tags, unmapped = tag_map.apply(tags)
        for tag, value in unmapped:
            summary.unmapped.setdefault(tag, Counter())[value] += 1
    row: dict[str, Any] = {"id": record.id, "audio": shown, "text": record.text}
    if record.speaker:
        row["speaker"] = record.speaker
        summary.speakers.add(record.speaker)
    row["language"] = record.language
    if record.offset:
        row["offset"] = round(record.offset, 3)
    if record.duration is not None:
        row["duration"] = round(record.duration, 3)
    for tag, value in tags.items():
        if tag in RESERVED_FIELDS or tag in RESULT_COLUMNS:
            raise InputError(
                f"import format '{summary.format}' yields a tag '{tag}', which is a reserved manifest field; "
                "the importer must rename it (a bug in the importer: please report it)"
            )
        row[tag] = value
        summary.tags.setdefault(tag, Counter())[value] += 1
    summary.written += 1
    return row


def _audio_root(root: Path | None, audio: Path, source: Path) -> Path:
    """The folder to allow with ``audio_roots``: the corpus folder where the audio is inside it,
    else the deepest folder holding every audio file seen so far."""
    folder = source if audio.is_relative_to(source) else audio.parent
    return folder if root is None else Path(os.path.commonpath([root, folder]))


def _reject_json(reject: Reject) -> dict[str, Any]:
    return {"source": reject.source, "id": reject.id, "reason": reject.reason, "detail": reject.detail}


def _json_line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def _write_card(importer: Importer, summary: ImportSummary, tag_map: TagMap | None) -> tuple[Path, bool]:
    """``dataset.yaml`` beside the manifest: where the data came from, its licence, and which
    demographic tags the corpus documents as self-reported. A card not written by an import is kept."""
    card = summary.manifest.parent / DATASET_CARD
    if card.is_file():
        existing = read_yaml(card, "dataset card")
        if not (isinstance(existing, dict) and existing.get("generator") == CARD_GENERATOR):
            return card, True
    tags: dict[str, Any] = {}
    for tag in summary.tags:
        info = importer.tags.get(tag)
        entry: dict[str, Any] = {"description": info.description if info else f"from the {importer.name} source"}
        if tag_map is not None and tag in tag_map.rules:
            entry["description"] += f" (mapped by {tag_map.path.name})"
        if info and info.demographic:
            entry["demographic"] = True
            entry["self_reported"] = info.self_reported
        tags[tag] = entry
    data: dict[str, Any] = {
        "name": summary.manifest.parent.name,
        "description": importer.description,
        "generator": CARD_GENERATOR,
        "format": importer.name,
        "source": str(importer.source.resolve()),
        "split": importer.split,
        "homepage": importer.homepage,
        "licence": importer.licence,
        "imported_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "utterances": summary.written,
        "speakers": len(summary.speakers),
    }
    if tag_map is not None:
        data["tag_map"] = {"path": str(tag_map.path), "sha256": tag_map.sha256}
    data["tags"] = tags
    write_yaml(card, {k: v for k, v in data.items() if v not in (None, "")})
    return card, False
