"""Hugging Face ``datasets``: a dataset saved with ``save_to_disk``, a hub cache folder, or a folder
of the hub's parquet shards, with an ``Audio`` column (``asrfair import hf SOURCE``).

Most accented-speech test sets people use are on the hub (EdAcc, Common Voice, AfriSpeech,
VoxPopuli) and reach users through ``datasets``. Three shapes of one on disk are read:

* ``save_to_disk`` output: ``dataset_dict.json`` with a folder per split, or one split's
  ``state.json`` + ``data-*.arrow``; opened with ``datasets.load_from_disk`` (memory-mapped).
* the hub's parquet shards: ``data/test-00000-of-00002.parquet`` (``push_to_hub`` layout, one
  folder per config when there are several) or ``CONFIG/test/0000.parquet`` (the hub's
  ``refs/convert/parquet`` branch); read with ``pyarrow`` one row group at a time, so memory
  stays constant. The ``Audio`` column is found from the ``huggingface`` schema metadata that
  ``datasets`` writes into each shard.
* a hub cache folder (``~/.cache/huggingface/hub/datasets--ORG--NAME``, as ``snapshot_download``
  or ``load_dataset`` leave it): the snapshot ``refs/main`` names (or the only one), read as
  parquet shards.

Audio is never decoded by ``datasets`` (that needs torchcodec): each row's stored ``bytes`` are
written as they are (no re-encoding) to ``audio/<split>/<id><ext>`` beside the manifest, the
extension from the stored file name or the bytes' own header; with ``-O audio_format=flac`` they
are decoded with libsndfile and written as FLAC. A row that stores only a ``path`` to a local file
is referenced in place. Columns are chosen with ``-O text=``, ``-O speaker=``, ``-O id=``,
``-O audio=`` (defaults: the usual names, below); every other scalar column is a tag (``-O tags=``
narrows them; ``ClassLabel`` integers become their names), ready for ``--map``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field

from harness.data.importers.base import (
    Importer,
    ImporterOptions,
    Record,
    Reject,
    split_commas,
)
from harness.data.manifest import RESERVED_FIELDS, RESULT_COLUMNS
from harness.errors import InputError

BATCH = 64  # rows read at a time: a batch of audio bytes is the only thing held
TEXT_COLUMNS = ("text", "sentence", "transcription", "transcript", "normalized_text", "raw_text")
SPEAKER_COLUMNS = ("speaker_id", "speaker", "client_id", "spk_id", "speaker_name")
ID_COLUMNS = ("id", "utterance_id", "segment_id", "audio_id", "file_id", "key")
LOCALE_COLUMNS = ("locale",)  # Common Voice on the hub: per-row language code
SHARD = re.compile(r"(?P<split>[\w.]+?)-\d{5}-of-\d{5}\.parquet")  # push_to_hub: test-00000-of-00002.parquet
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")
MAGIC = ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3"), (b"\xff\xfb", ".mp3"),
         (b"\xff\xf3", ".mp3"), (b"\xff\xf2", ".mp3"))  # fmt: skip
UNSAFE = re.compile(r"[^\w.-]+")


class HuggingFaceOptions(ImporterOptions):
    text: str | None = Field(None, description=f"the transcript column (default: first of {', '.join(TEXT_COLUMNS)})")
    speaker: str | None = Field(None, description=f"speaker column (default: first of {', '.join(SPEAKER_COLUMNS)})")
    id: str | None = Field(None, description="the utterance id column (default: id, ...; else the audio file's stem)")
    audio: str | None = Field(None, description="the audio column (default: the one Audio column)")
    tags: Annotated[tuple[str, ...], BeforeValidator(split_commas)] = Field(
        ("*",), description="columns that become tags: * for every other scalar column, a comma list, or empty"
    )
    config: str | None = Field(None, description="the config (subset) folder, where the shards hold several")
    language: str = Field("en", min_length=1, description="language code of every row (a 'locale' column overrides)")
    audio_dir: Path | None = Field(None, description="where audio is written (default: audio/SPLIT by the manifest)")
    audio_format: Literal["keep", "flac"] = Field(
        "keep", description="keep: write the stored bytes as they are; flac: decode and write FLAC"
    )


@dataclass(frozen=True, slots=True)
class Columns:
    audio: str
    text: str
    speaker: str | None
    id: str | None
    locale: str | None
    tags: tuple[str, ...]
    labels: Mapping[str, tuple[str, ...]]  # ClassLabel column → its names


class HuggingFaceImporter(Importer):
    name = "hf"
    description = "Hugging Face datasets: save_to_disk folder, hub cache folder, or the hub's parquet shards"
    homepage = "https://huggingface.co/docs/datasets"
    licence = "the licence on the dataset's hub card"
    free_split = "the split (save_to_disk key, or the shard name: test-00000-of-00001.parquet); default test"
    Options = HuggingFaceOptions
    options: HuggingFaceOptions
    tags: ClassVar = {}  # whatever columns the dataset has: named in the card from the import

    def __init__(self, source: Path, options: ImporterOptions, split: str | None = None) -> None:
        super().__init__(source, options, split)
        try:
            import datasets
        except ImportError:
            datasets = None
        if not hasattr(datasets, "load_from_disk"):  # absent, or a checkout's datasets/ folder read as a namespace
            raise InputError("import hf needs the 'datasets' package: pip install 'asr-fairness-harness[hf]'")
        self.output: Path | None = None
        self.root = _snapshot(self.source)
        self.saved = (self.root / "dataset_dict.json").is_file() or (self.root / "state.json").is_file()
        self.shards: list[Path] = [] if self.saved else self._shards()
        features = self._features()
        self.columns = self._columns(features)
        self._seen: set[str] = set()

    # -- finding the data ---------------------------------------------------------------------------------

    def _dataset(self) -> Any:
        """The ``save_to_disk`` split, audio left undecoded."""
        import datasets

        try:
            loaded = datasets.load_from_disk(str(self.root))
        except (FileNotFoundError, ValueError) as exc:
            raise InputError(f"{self.root}: not a readable save_to_disk folder ({exc})") from None
        if isinstance(loaded, datasets.DatasetDict):
            splits = list(loaded)
            chosen = self.split or ("test" if "test" in splits else splits[0] if len(splits) == 1 else None)
            if chosen not in splits:
                wanted = f"--split {self.split}: no such split" if self.split else "several splits"
                raise InputError(f"{self.root}: {wanted}; it has {', '.join(splits)} (choose with --split)")
            self.split = chosen
            loaded = loaded[chosen]
        return loaded

    def _shards(self) -> list[Path]:
        """The parquet shards of the chosen split (and config)."""
        found: dict[tuple[str, str], list[Path]] = {}
        for path in sorted(self.root.rglob("*.parquet")):
            relative = path.relative_to(self.root)
            match = SHARD.fullmatch(path.name)
            split = match.group("split") if match else relative.parent.name or path.stem
            parts = relative.parent.parts if match else relative.parent.parts[:-1]
            config = "/".join(part for part in parts if part != "data")
            found.setdefault((config, split.removeprefix("partial-")), []).append(path)
        if not found:
            raise InputError(
                f"{self.source}: no save_to_disk files (dataset_dict.json, state.json) and no .parquet shards; pass "
                "a folder written by save_to_disk, a hub cache folder (datasets--ORG--NAME) or a folder of parquet"
            )
        splits = sorted({split for _, split in found})
        split = self.split or ("test" if "test" in splits else splits[0] if len(splits) == 1 else None)
        if split not in splits:
            wanted = f"--split {self.split}: no shards of that split" if self.split else "shards of several splits"
            raise InputError(f"{self.root}: {wanted}; it has {', '.join(splits)} (choose with --split)")
        self.split = split
        configs = sorted(config for config, name in found if name == split)
        if self.options.config is not None:
            if self.options.config not in configs:
                raise InputError(f"-O config={self.options.config}: no such config; {split} shards are in {configs}")
            configs = [self.options.config]
        if len(configs) > 1:
            shown = ", ".join(configs)
            raise InputError(f"{self.root}: {split} shards of several configs ({shown}); choose one with -O config=")
        return found[(configs[0], split)]

    def _features(self) -> Any:
        import pyarrow.parquet as pq

        import datasets

        if self.saved:
            return self._dataset().features
        schema = pq.read_schema(self.shards[0])
        try:
            return datasets.Features.from_arrow_schema(schema)
        except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
            raise InputError(f"{self.shards[0]}: cannot read its column types ({exc})") from None

    def _columns(self, features: Any) -> Columns:
        import datasets

        names = list(features)
        opts = self.options
        audio_columns = [name for name, kind in features.items() if isinstance(kind, datasets.Audio)]
        audio = opts.audio or (audio_columns[0] if len(audio_columns) == 1 else None)
        if audio is None:
            found = f"several ({', '.join(audio_columns)})" if audio_columns else "none"
            raise InputError(f"{self.root}: Audio columns: {found}; name the audio column with -O audio=COLUMN")
        text = opts.text or next((name for name in TEXT_COLUMNS if name in names), None)
        if text is None:
            raise InputError(f"{self.root}: no transcript column ({', '.join(names)}); name it with -O text=COLUMN")
        speaker = opts.speaker or next((name for name in SPEAKER_COLUMNS if name in names), None)
        uid = opts.id or next((name for name in ID_COLUMNS if name in names), None)
        locale = next((name for name in LOCALE_COLUMNS if name in names), None)
        for option, name in (("audio", audio), ("text", text), ("speaker", speaker), ("id", uid)):
            if name is not None and name not in names:
                raise InputError(f"-O {option}={name}: no such column; the dataset has {', '.join(names)}")
        used = {audio, text, speaker, uid}
        if "*" in opts.tags:
            tags = tuple(name for name in names if name not in used and _scalar(features[name]))
        else:
            unknown = [name for name in opts.tags if name not in names]
            if unknown:
                raise InputError(f"-O tags: no column {', '.join(unknown)}; the dataset has {', '.join(names)}")
            tags = tuple(opts.tags)
        labels = {
            name: tuple(features[name].names) for name in tags if isinstance(features[name], datasets.ClassLabel)
        }
        return Columns(audio, text, speaker, uid, locale, tags, labels)

    # -- reading ------------------------------------------------------------------------------------------

    def set_output(self, manifest: Path) -> None:
        self.output = self.options.audio_dir or manifest.parent / "audio" / (self.split or "all")

    def estimate(self) -> int | None:
        if self.saved:
            return None
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(path).metadata.num_rows for path in self.shards)

    def rows(self) -> Iterator[Record | Reject]:
        if self.output is None:
            raise InputError("hf: no output folder for the audio (set_output was not called)")  # the writer calls it
        self.output.mkdir(parents=True, exist_ok=True)
        for where, row in self._table_rows():
            yield self._record(row, where)

    def _table_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        columns = [c for c in {self.columns.audio, self.columns.text, self.columns.speaker, self.columns.id,
                               self.columns.locale, *self.columns.tags} if c is not None]  # fmt: skip
        if self.saved:
            import datasets

            data = self._dataset()
            if isinstance(data.features[self.columns.audio], datasets.Audio):
                data = data.cast_column(self.columns.audio, datasets.Audio(decode=False))
            index = 0
            for batch in data.select_columns(columns).iter(batch_size=BATCH):
                for row in _rows(batch):
                    index += 1
                    yield f"{self.split}:{index}", row
            return
        import pyarrow.parquet as pq

        for path in self.shards:
            shown = self.where(path)
            index = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH, columns=columns):
                for row in _rows(batch.to_pydict()):
                    index += 1
                    yield f"{shown}:{index}", row

    def _record(self, row: dict[str, Any], where: str) -> Record | Reject:
        cols = self.columns
        stored = row.get(cols.audio)
        name = _stored_name(stored)
        uid = str(row[cols.id]).strip() if cols.id and row.get(cols.id) not in (None, "") else ""
        uid = uid or (Path(name).stem if name else f"{self.split}-{where.rsplit(':', 1)[1]}")
        if uid in self._seen:
            return Reject("repeated id", where, uid, "an earlier row has this id; name a unique column with -O id=")
        self._seen.add(uid)
        audio = self._audio(stored, uid, where)
        if isinstance(audio, Reject):
            return audio
        tags: dict[str, str] = {}
        for column in cols.tags:
            text = _tag_text(row.get(column), cols.labels.get(column))
            if text:
                tags[f"hf_{column}" if column in RESERVED_FIELDS or column in RESULT_COLUMNS else column] = text
        locale = str(row.get(cols.locale) or "").strip() if cols.locale else ""
        speaker = str(row[cols.speaker]).strip() if cols.speaker and row.get(cols.speaker) is not None else ""
        return Record(
            id=uid,
            audio=audio,
            text=str(row.get(cols.text) or ""),
            speaker=speaker or None,
            tags=tags,
            language=re.split(r"[-_]", locale)[0].lower() if locale else self.options.language,
            source=where,
        )

    def _audio(self, stored: Any, uid: str, where: str) -> Path | Reject:
        """The audio file for a row: its bytes written out, or the local file it names."""
        assert self.output is not None
        if isinstance(stored, str):  # a plain path column
            stored = {"bytes": None, "path": stored}
        if not isinstance(stored, dict):
            return Reject("no audio", where, uid, f"the {self.columns.audio} cell is empty")
        data, name = stored.get("bytes"), stored.get("path")
        if not data:
            if not name:
                return Reject("no audio", where, uid, f"the {self.columns.audio} cell has neither bytes nor a path")
            path = Path(name)
            return path if path.is_absolute() else self.root / path  # the writer rejects a missing file
        suffix = _suffix(name, data)
        if suffix is None:
            return Reject("unknown audio format", where, uid, f"stored bytes of {name or 'no name'} are not "
                          "WAV, FLAC, MP3 or Ogg; -O audio_format=flac decodes what libsndfile reads")  # fmt: skip
        target = self.output / f"{UNSAFE.sub('_', uid)}{'.flac' if self.options.audio_format == 'flac' else suffix}"
        if self.options.audio_format == "flac":
            return self._flac(data, target, where, uid)
        if not (target.is_file() and target.stat().st_size == len(data)):  # a re-import rewrites nothing
            target.write_bytes(data)
        return target

    @staticmethod
    def _flac(data: bytes, target: Path, where: str, uid: str) -> Path | Reject:
        import soundfile

        try:
            samples, rate = soundfile.read(io.BytesIO(data), dtype="int16", always_2d=False)
        except (RuntimeError, OSError) as exc:  # soundfile.LibsndfileError is a RuntimeError
            return Reject("undecodable audio", where, uid, f"libsndfile cannot read the stored bytes ({exc})")
        soundfile.write(target, samples, rate, format="FLAC", subtype="PCM_16")
        return target


def _snapshot(source: Path) -> Path:
    """A hub cache repo folder (``datasets--ORG--NAME``) as its snapshot; any other folder as it is."""
    snapshots = source / "snapshots"
    if not snapshots.is_dir():
        repos = sorted(p.name for p in source.glob("datasets--*") if p.is_dir())
        if repos:
            raise InputError(f"{source}: a hub cache of several datasets; pass one, e.g. {source / repos[0]}")
        return source
    ref = source / "refs" / "main"
    if ref.is_file() and (snapshots / ref.read_text().strip()).is_dir():
        return snapshots / ref.read_text().strip()
    found = sorted(p for p in snapshots.iterdir() if p.is_dir())
    if len(found) != 1:
        raise InputError(f"{source}: {len(found)} snapshots and no refs/main; pass the snapshot folder itself")
    return found[0]


def _rows(batch: Mapping[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """A column-wise batch as rows."""
    names = list(batch)
    for values in zip(*(batch[name] for name in names), strict=True):
        yield dict(zip(names, values, strict=True))


def _scalar(feature: Any) -> bool:
    """A column worth a tag by default: text, integer, boolean or class label (not floats, lists, audio)."""
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return True
    return isinstance(feature, datasets.Value) and (
        feature.dtype in ("string", "large_string", "bool") or feature.dtype.startswith(("int", "uint"))
    )


def _tag_text(value: Any, labels: tuple[str, ...] | None) -> str:
    """A cell as tag text: a class label's name, a boolean as true/false, text stripped; '' for none."""
    if value is None or isinstance(value, list | dict):
        return ""
    if labels is not None and isinstance(value, int) and 0 <= value < len(labels):
        return labels[value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _stored_name(stored: Any) -> str:
    if isinstance(stored, str):
        return stored
    return str(stored.get("path") or "") if isinstance(stored, dict) else ""


def _suffix(name: str | None, data: bytes) -> str | None:
    """The stored file's extension, else the one its first bytes announce."""
    suffix = Path(name).suffix.lower() if name else ""
    if suffix in AUDIO_SUFFIXES:
        return suffix
    return next((ext for magic, ext in MAGIC if data.startswith(magic)), None)
