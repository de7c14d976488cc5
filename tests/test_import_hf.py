"""Hugging Face datasets, built locally with the ``datasets`` library from real speech (datasets/real-mini).

No network: each dataset is made here the way the hub stores audio datasets (an ``Audio`` column of
the original file's bytes and name, as ``push_to_hub`` embeds them), then saved with
``save_to_disk``, written as the hub's parquet shards, or laid out as a hub cache folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
from cli import invoke
from conftest import REPO
from importing import import_validate_run

datasets = pytest.importorskip("datasets")
if not hasattr(datasets, "Dataset"):  # the repo's datasets/ folder, read as a namespace package
    pytest.skip("the 'datasets' package is not installed (pip install -e '.[dev]')", allow_module_level=True)

REAL = REPO / "datasets" / "real-mini"
CLIPS = [  # (real-mini id, a Common Voice-like accent as a speaker typed it) — mixed formats and rates
    ("cmuarctic_bdl_arctic_b0440", "United States English"),  # 16 kHz 16-bit WAV
    ("cmuarctic_bdl_arctic_b0441", "United States English"),
    ("vctk_p294_024", "United States English"),  # 24 kHz FLAC
    ("vctk_p234_005", "Scottish English"),
    ("vctk_p248_005", "India and South Asia (India, Pakistan, Sri Lanka)"),
    ("vctk_p238_165", "Northern Irish"),  # 48 kHz WAV
]


def _real_rows(split: str) -> dict[str, list]:
    rows = {json.loads(line)["id"]: json.loads(line) for line in (REAL / "manifest.jsonl").read_text().splitlines()}
    chosen = CLIPS if split == "test" else CLIPS[:2]
    missing = [uid for uid, _ in chosen if uid not in rows]
    assert not missing, f"datasets/real-mini has no {missing}"
    audio = [REAL / rows[uid]["audio"] for uid, _ in chosen]
    return {
        "client_id": [hashlib.sha256(rows[uid]["speaker"].encode()).hexdigest() for uid, _ in chosen],
        "audio": [{"bytes": path.read_bytes(), "path": path.name} for path in audio],
        "sentence": [rows[uid]["text"] for uid, _ in chosen],
        "accent": [accent for _, accent in chosen],
        "gender": [["female", "male"].index(rows[uid]["gender"]) for uid, _ in chosen],
        "up_votes": [2] * len(chosen),
        "duration_s": [float(sf.info(path).duration) for path in audio],
        "locale": ["en"] * len(chosen),
    }


def _dataset(split: str = "test"):
    ds = datasets.Dataset.from_dict(_real_rows(split))
    return ds.cast_column("audio", datasets.Audio()).cast_column(
        "gender", datasets.ClassLabel(names=["female", "male"])
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hf") / "saved"
    datasets.DatasetDict({"test": _dataset(), "train": _dataset("train")}).save_to_disk(str(folder))
    return folder


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """The hub's push_to_hub layout: data/<split>-0000N-of-0000M.parquet, test in two shards."""
    folder = tmp_path_factory.mktemp("hf") / "parquet"
    (folder / "data").mkdir(parents=True)
    test = _dataset()
    test.select(range(4)).to_parquet(str(folder / "data" / "test-00000-of-00002.parquet"))
    test.select(range(4, 6)).to_parquet(str(folder / "data" / "test-00001-of-00002.parquet"))
    _dataset("train").to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    (folder / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n")
    return folder


def test_save_to_disk_imports_validates_and_runs(saved, tmp_path):
    imported = import_validate_run("hf", saved, tmp_path)
    assert [r["id"] for r in imported.records] == [uid for uid, _ in CLIPS]  # the stored file names' stems
    first = imported.records[0]
    assert first["text"] == "There were stir and bustle, new faces, and fresh facts."
    assert (first["accent"], first["gender"], first["up_votes"], first["language"]) == (
        "United States English", "male", "2", "en",
    )  # fmt: skip  # ClassLabel as its name; every other scalar column a tag
    assert "duration_s" not in first and "client_id" not in first  # a float is no tag; client_id is the speaker
    assert imported.summary["speakers"] == 5
    # the stored bytes are written unchanged, under their own extension, beside the manifest
    for record, (uid, _) in zip(imported.records, CLIPS, strict=True):
        written = imported.manifest.parent / record["audio"]
        assert record["audio"].startswith("audio/test/") and written.is_file()
        source = next((REAL / "audio").rglob(f"{uid}.*"))
        assert written.suffix == source.suffix and written.read_bytes() == source.read_bytes()


def test_parquet_shards_in_the_hub_layout(shards, tmp_path):
    imported = import_validate_run("hf", shards, tmp_path)  # --split test by default; both shards
    assert [r["id"] for r in imported.records] == [uid for uid, _ in CLIPS]
    assert imported.summary["split"] == "test"
    train = import_validate_run("hf", shards, tmp_path / "train", "--split", "train")
    assert len(train.records) == 2 and train.records[0]["audio"].startswith("audio/train/")


def test_a_hub_cache_folder_reads_the_snapshot_refs_main_names(shards, tmp_path):
    repo = tmp_path / "hub" / "datasets--someone--accents"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(shards, repo / "snapshots" / commit)
    shutil.copytree(shards, repo / "snapshots" / ("f" * 40))  # an older revision, not the one refs/main names
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    imported = import_validate_run("hf", repo, tmp_path / "out")
    assert len(imported.records) == 6
    several = invoke("import", "hf", str(tmp_path / "hub"), "-o", str(tmp_path / "x" / "m.jsonl"))
    assert several.returncode == 2 and "datasets--someone--accents" in several.stderr


def test_columns_options_tag_map_and_flac(saved, tmp_path):
    tag_map = tmp_path / "accents.yaml"
    tag_map.write_text("accent:\n  map:\n    us: [United States English]\n  unmapped: other\n")
    imported = import_validate_run(
        "hf", saved, tmp_path / "a", "-O", "tags=accent", "-O", "audio_format=flac", "--map", str(tag_map)
    )
    assert imported.summary["tags"] == {"accent": {"us": 3, "other": 3}}
    assert all(r["audio"].endswith(".flac") for r in imported.records)
    flac = imported.manifest.parent / imported.records[5]["audio"]
    assert sf.info(flac).samplerate == 48000  # decoded and written losslessly at its own rate
    by_sentence = import_validate_run("hf", saved, tmp_path / "b", "-O", "id=sentence", "-O", "tags=")
    assert by_sentence.records[0]["id"] == "There were stir and bustle, new faces, and fresh facts."
    assert set(by_sentence.summary["tags"]) == set()


def test_bad_sources_and_options_are_one_line_errors(saved, shards, tmp_path):
    out = str(tmp_path / "m.jsonl")
    empty = tmp_path / "empty"
    empty.mkdir()
    no_audio = tmp_path / "no-audio"
    datasets.Dataset.from_dict({"sentence": ["a few words"]}).save_to_disk(str(no_audio))
    for args, message in [
        ((str(empty),), "no save_to_disk files"),
        ((str(saved), "--split", "validation"), "--split validation: no such split; it has test, train"),
        ((str(shards), "--split", "dev"), "--split dev: no shards of that split; it has test, train"),
        ((str(saved), "-O", "text=transcript"), "-O text=transcript: no such column"),
        ((str(saved), "-O", "tags=accent,region"), "-O tags: no column region"),
        ((str(no_audio),), "Audio columns: none; name the audio column with -O audio=COLUMN"),
    ]:
        result = invoke("import", "hf", *args, "-o", out)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
