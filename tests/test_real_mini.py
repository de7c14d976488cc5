"""datasets/real-mini: real read speech (CMU ARCTIC, VCTK) as bundled; every format it holds decodes."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
import soundfile as sf
from cli import asrfair
from conftest import REPO

from harness.data.audio import SAMPLE_RATE, load_audio
from harness.data.manifest import Utterance

CORPUS = REPO / "datasets" / "real-mini"
ROWS = [json.loads(line) for line in (CORPUS / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
# SOURCES.md's table: | id | speaker | ... | `sha256 prefix…` | licence |
LISTED = dict(re.findall(r"^\| (\S+) \|.*\| `([0-9a-f]{16})…` \|", (CORPUS / "SOURCES.md").read_text(), re.M))


def _format(row: dict) -> tuple[str, int, str]:
    info = sf.info(str(CORPUS / row["audio"]))
    return info.format, info.samplerate, info.subtype


FORMATS = sorted({_format(row) for row in ROWS})


def test_the_corpus_is_what_its_sources_say():
    assert len(ROWS) == 69 and len({r["speaker"] for r in ROWS}) == 9 and len({r["accent"] for r in ROWS}) == 7
    assert set(LISTED) == {r["id"] for r in ROWS}  # every clip attributed, none unlisted
    for row in ROWS:  # bytes as taken from the source named in SOURCES.md
        digest = hashlib.sha256((CORPUS / row["audio"]).read_bytes()).hexdigest()
        assert digest.startswith(LISTED[row["id"]]), row["id"]
    # mixed formats, as found: WAV 16/48 kHz 16-bit, WAV 32-bit float, FLAC 24 kHz
    assert FORMATS == [("FLAC", 24000, "PCM_16"), ("WAV", 16000, "FLOAT"), ("WAV", 16000, "PCM_16"),
                       ("WAV", 48000, "PCM_16")]  # fmt: skip


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"{f[0]}-{f[1]}-{f[2]}")
def test_every_format_decodes_to_16k_mono_speech(fmt):
    for row in (r for r in ROWS if _format(r) == fmt):
        path = CORPUS / row["audio"]
        samples = load_audio(Utterance(id=row["id"], audio=path, text=row["text"]))
        assert samples.dtype == np.float32 and samples.ndim == 1
        assert len(samples) == pytest.approx(sf.info(str(path)).duration * SAMPLE_RATE, abs=2)
        level = float(np.sqrt(np.mean(samples**2)))
        assert 0.005 < level < 0.7 and np.abs(samples).max() <= 1.0  # speech, not silence or clipping noise


def test_the_manifest_validates_with_its_card():
    result = asrfair("validate", str(CORPUS / "manifest.jsonl"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "69 utterances, 9 speakers" in result.stdout and "0 errors" in result.stdout
