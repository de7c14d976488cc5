"""A slice dimension that groups exactly the utterances another one does (``accent × noise`` when
``noise`` has one value) is left out, with the reason in the run's output: every table, gate check
and Holm family would otherwise count it twice."""

from __future__ import annotations

import logging

import pandas as pd
from conftest import write_config

from harness.config import GateConfig, load_config
from harness.decide.gate import load_side, run_gate
from harness.pipeline import prepare, run
from harness.stats.slices import SliceSpec, drop_duplicate_dimensions

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


def test_a_one_valued_tag_makes_its_intersection_a_duplicate():
    rows = pd.DataFrame(
        {
            "accent": ["a", "b", "c", "a", "b", "c"],
            "noise": ["clean"] * 6,
            "device": ["mic", "mic", "mic", "phone", "phone", "phone"],
        }
    )
    specs = [
        SliceSpec(by=("accent", "noise")),  # listed first: still the one-tag dimension is kept
        SliceSpec(by=("accent",)),
        SliceSpec(by=("noise",)),  # one slice: duplicates only the overall figure, kept
        SliceSpec(by=("device",)),
        SliceSpec(by=("accent", "device")),  # six groups of one: a dimension of its own
        SliceSpec(by=("device",), name="device again"),
    ]
    kept, dropped = drop_duplicate_dimensions(specs, rows)
    assert [s.label for s in kept] == ["accent", "noise", "device", "accent × device"]
    assert [(d.name, d.duplicate_of, d.single_valued) for d in dropped] == [
        ("accent × noise", "accent", ("noise",)),
        ("device again", "device", ()),
    ]
    assert dropped[0].describe() == (
        "slice dimension 'accent × noise' left out: the same groups of utterances as 'accent' (noise has one value)"
    )


def test_a_where_filter_makes_a_different_dimension():
    rows = pd.DataFrame({"accent": ["a", "b", "a", "b"], "device": ["mic", "mic", "phone", "phone"]})
    specs = [SliceSpec(by=("accent",)), SliceSpec(by=("accent",), where={"device": ("mic",)}, name="accent on mic")]
    kept, dropped = drop_duplicate_dimensions(specs, rows)
    assert len(kept) == 2 and not dropped


def test_the_run_drops_the_duplicate_says_why_and_the_gate_family_shrinks(tmp_path, make_manifest, caplog):
    records = [
        {"id": f"{a}-{s}-{n}", "text": " ".join(WORDS[(n + k) % 10] for k in range(8)), "speaker": f"{a}{s}"}
        | {"accent": a, "noise": "clean"}
        for a in ("north", "south", "west")
        for s in range(4)
        for n in range(4)
    ]
    manifest = make_manifest(records)
    slices = [{"by": "accent"}, {"by": "noise"}, {"by": ["accent", "noise"]}]
    runs = []
    for name in ("base", "same"):
        config = write_config(
            tmp_path / f"{name}.yaml", manifest, {"name": "stub", "default_rate": 0.1}, name=name, slices=slices
        )
        with caplog.at_level(logging.WARNING, logger="harness.pipeline"):
            runs.append(run(prepare(load_config(config))))
    assert "slice dimension 'accent × noise' left out: the same groups of utterances as 'accent'" in caplog.text
    assert [d["name"] for d in runs[0].metrics["dimensions"]] == ["accent", "noise"]

    base, same = load_side(runs[0].paths.root, "baseline"), load_side(runs[1].paths.root, "candidate")
    result = run_gate(base, same, GateConfig())
    assert not any("×" in c.name for c in result.checks)
    assert result.tests == 1 + 3 + 1  # overall, three accents, the accent gap (was 9 with the duplicate)
