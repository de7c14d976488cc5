"""Caveats read from the dataset cards the repository ships (datasets/*/dataset.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data.card import card_caveats, card_provenance
from harness.errors import InputError

DATASETS = Path(__file__).resolve().parent.parent / "datasets"


def test_the_demo_card_says_synthetic_first():
    caveats = card_caveats(DATASETS / "demo" / "dataset.yaml")
    assert [c.kind for c in caveats] == ["synthetic", "licence", "demographics"]
    assert "no human speech is included" in caveats[0].text  # the card's own description follows
    assert caveats[1].text.startswith("licence: text: Harvard sentences") and "; audio: " in caveats[1].text
    assert caveats[2].text == "demographics: none"


def test_real_speech_carries_its_licence_and_attribution_but_no_synthetic_caveat():
    caveats = card_caveats(DATASETS / "real-mini" / "dataset.yaml")  # synthetic: false
    assert [c.kind for c in caveats] == ["licence", "attribution"]
    assert "CC BY 4.0" in caveats[0].text and "SOURCES.md" in caveats[1].text


def test_no_card_is_a_caveat_and_a_broken_card_a_located_error(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    missing = card_provenance(manifest)
    assert missing["path"] is None and [c["kind"] for c in missing["caveats"]] == ["no card"]
    assert "whether the speech is real or synthetic are not recorded" in missing["caveats"][0]["text"]
    (tmp_path / "dataset.yaml").write_text("synthetic: [true\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"dataset.yaml:\d+: bad YAML"):
        card_provenance(manifest)
    (tmp_path / "dataset.yaml").write_text("caveats: only two speakers\nlicense: MIT\n", encoding="utf-8")
    assert card_provenance(manifest)["caveats"] == [
        {"kind": "licence", "text": "licence: MIT"},
        {"kind": "note", "text": "only two speakers"},
    ]
