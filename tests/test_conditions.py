"""Last-mile conditions through the pipeline: paired ΔWER, differential degradation, rendering, errors."""

from __future__ import annotations

import hashlib
from typing import ClassVar

import jiwer
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from cli import invoke
from conftest import accent_records, write_config, write_jsonl

from harness.backends.base import AudioRequest, Backend, Capabilities, Registry
from harness.conditions import Condition, Simulator
from harness.config import load_config
from harness.data.audio import load_audio
from harness.pipeline import prepare, rescore, run

CONDITIONS = [
    {"name": "clean"},
    {"name": "noisy", "transforms": [{"type": "noise", "color": "pink", "snr_db": 10}]},
    {"name": "phone", "transforms": [{"type": "telephone"}]},
]


@pytest.fixture
def accents_manifest(make_manifest):
    """3 accents × 8 speakers × 10 utterances of 10 words (the stub needs no decoding)."""
    records = accent_records(8, 10)
    return make_manifest(records)


def run_stub(tmp_path, manifest, conditions=CONDITIONS, max_failure_rate=0.0, **backend):
    path = write_config(
        tmp_path / "run.yaml",
        manifest,
        {"name": "stub", **backend},
        conditions=conditions,
        stats={"min_speakers": 3, "min_words": 50, "bootstrap": 500, "permutations": 500},
        max_failure_rate=max_failure_rate,
    )
    return run(prepare(load_config(path)))


def accent_block(metrics):
    return next(d for d in metrics["conditions"]["dimensions"] if d["name"] == "accent")


def test_one_accent_hurt_under_one_condition_is_flagged(tmp_path, accents_manifest):
    outcome = run_stub(
        tmp_path,
        accents_manifest,
        default_rate=0.05,
        error_rates={"condition": {"noisy": 0.1, "phone": 0.1}},
        error_rules=[{"when": {"accent": "scottish", "condition": "phone"}, "rate": 0.3}],
    )
    block = accent_block(outcome.metrics)
    shifts = {s["condition"]: s for s in block["shifts"]}
    assert shifts["phone"]["interaction"]["significant"]
    assert shifts["phone"]["most_degraded"] == "scottish"
    assert shifts["phone"]["gap_change_ci"][0] > 0  # the accent gap widens under phone, and that is real
    assert not shifts["noisy"]["interaction"]["significant"]  # uniform degradation: no interaction
    marked = {(s["label"], c["condition"]) for s in block["slices"] for c in s["cells"] if c["degrades_more"]}
    assert marked == {("scottish", "phone")}
    report = (outcome.paths.root / "report.md").read_text()
    assert "## Simulated conditions (paired, against clean)" in report and "▲" in report


def test_no_interaction_no_mark(tmp_path, accents_manifest):
    outcome = run_stub(tmp_path, accents_manifest, default_rate=0.05, error_rates={"condition": {"phone": 0.2}})
    block = accent_block(outcome.metrics)
    assert not any(c["degrades_more"] for s in block["slices"] for c in s["cells"])
    phone = next(s for s in block["shifts"] if s["condition"] == "phone")
    assert phone["delta"] == pytest.approx(0.2 * 0.95, abs=0.03)  # 1 - (1 - .05)(1 - .2) - .05
    assert phone["delta_ci"][0] > 0


def test_paired_delta_is_the_difference_of_condition_wers_and_matches_jiwer(tmp_path, accents_manifest):
    outcome = run_stub(
        tmp_path,
        accents_manifest,
        default_rate=0.05,
        error_rates={"condition": {"phone": 0.2}},
        failure_rates={"condition": {"noisy": 0.05}},
        max_failure_rate=1.0,
    )
    conditions = outcome.metrics["conditions"]
    table = pd.read_parquet(outcome.paths.utterances)
    failed_ids = set(table.loc[table["status"] != "ok", "id"])
    assert failed_ids and conditions["excluded_utterances"] == len(failed_ids)
    assert conditions["paired_utterances"] == 240 - len(failed_ids)
    paired = table[~table["id"].isin(failed_ids)]
    overall = {c["name"]: c for c in conditions["conditions"]}
    for name in ("clean", "noisy", "phone"):
        rows = paired[paired["condition"] == name]
        expected = jiwer.wer(rows["ref_norm"].tolist(), rows["hyp_norm"].tolist())
        assert overall[name]["wer"] == pytest.approx(expected, abs=1e-12)
    for s in accent_block(outcome.metrics)["slices"]:
        reference = s["cells"][0]["wer"]
        for cell in s["cells"][1:]:
            assert cell["delta"] == pytest.approx(cell["wer"] - reference, abs=1e-12)
            rows = paired[(paired["condition"] == cell["condition"]) & (paired["accent"] == s["label"])]
            assert cell["wer"] == pytest.approx(jiwer.wer(rows["ref_norm"].tolist(), rows["hyp_norm"].tolist()))


def test_conditions_are_a_dimension_and_evidence_is_labelled(tmp_path, accents_manifest):
    outcome = run_stub(tmp_path, accents_manifest, default_rate=0.05)
    metrics = outcome.metrics
    evidence = {d["name"]: d["evidence"] for d in metrics["dimensions"]}
    assert evidence == {"accent": "recorded", "condition": "simulated"}
    condition = next(d for d in metrics["dimensions"] if d["name"] == "condition")
    assert sorted(s["label"] for s in condition["slices"]) == ["clean", "noisy", "phone"]
    assert condition["test"]["kind"] == "within-speaker"
    assert metrics["schema"] == "asrfair.metrics/6"
    # the headline and the recorded dimension are the reference condition only: never pooled
    table = pd.read_parquet(outcome.paths.utterances)
    clean = table[table["condition"] == "clean"]
    assert metrics["overall"]["utterances"] == len(clean) == len(table) // 3
    assert metrics["overall"]["wer"] == pytest.approx(jiwer.wer(clean["ref_norm"].tolist(), clean["hyp_norm"].tolist()))
    accent = next(d for d in metrics["dimensions"] if d["name"] == "accent")
    assert sum(s["utterances"] for s in accent["slices"]) == len(clean)
    assert metrics["runaway"]["scope"] == "condition clean only"


def test_rerun_hits_the_cache_and_rescoring_keeps_the_comparison(tmp_path, accents_manifest):
    first = run_stub(tmp_path, accents_manifest, default_rate=0.05)
    again = run_stub(tmp_path, accents_manifest, default_rate=0.05)
    assert (first.transcribed, again.transcribed, again.from_cache) == (720, 0, 720)
    rescored = rescore(first.paths.root, normalizers=["basic"])
    assert rescored["conditions"]["paired_utterances"] == 240
    assert [c["name"] for c in rescored["conditions"]["conditions"]] == ["clean", "noisy", "phone"]


class ListeningBackend(Backend):
    """Hears decoded audio and answers with a digest of it: shows exactly what reached a model."""

    name: ClassVar[str] = "listening"
    capabilities: ClassVar[Capabilities] = Capabilities(needs_audio=True, max_batch_size=4)

    def transcribe_one(self, request: AudioRequest) -> str:
        return hashlib.sha256(np.ascontiguousarray(request.samples).tobytes()).hexdigest()[:12]

    def fingerprint(self) -> dict:
        return {"backend": self.name}


@pytest.fixture
def voices(tmp_path):
    """Six short clips of three speakers, each a different chirp, so babble has someone to borrow."""
    rate = 16_000
    records = []
    for i in range(6):
        t = np.arange(int(0.6 * rate)) / rate
        wave = 0.2 * np.sin(2 * np.pi * (200 + 90 * i) * t * (1 + t))
        path = tmp_path / f"v{i}.wav"
        sf.write(path, wave, rate)
        records.append({"id": f"v{i}", "audio": path.name, "text": "alpha bravo", "speaker": f"s{i % 3}"})
    return write_jsonl(tmp_path / "voices.jsonl", records)


def test_backend_hears_the_rendered_audio(tmp_path, voices):
    conditions = [
        {"name": "clean"},
        {
            "name": "cafe",
            "transforms": [{"type": "babble", "talkers": 2, "snr_db": 5}, {"type": "reverb", "rt60_s": 0.3}],
        },
    ]
    path = write_config(tmp_path / "run.yaml", voices, {"name": "listening"}, conditions=conditions, seed=7)
    config = load_config(path)
    registry = Registry({"listening": ListeningBackend})
    outcome = run(prepare(config, registry))
    heard = pd.read_parquet(outcome.paths.transcripts).set_index(["condition", "id"])["text"]

    manifest_utts = prepare(config, registry).manifest.utterances
    simulator = Simulator(manifest_utts, 7, 16_000)
    cafe = Condition.model_validate(conditions[1])
    for utt in manifest_utts:
        clean = load_audio(utt)
        rendered = simulator.render(cafe, utt, clean, 16_000)
        assert heard["clean", utt.id] == hashlib.sha256(clean.tobytes()).hexdigest()[:12]
        assert heard["cafe", utt.id] == hashlib.sha256(rendered.tobytes()).hexdigest()[:12]
    # Rendering is seeded, so a rerun asks for the same audio and the cache answers all of it.
    again = run(prepare(config, registry))
    assert (again.transcribed, again.from_cache) == (0, 12)


def test_audition_cli_writes_what_the_run_renders(tmp_path, voices):
    conditions = [{"name": "clean"}, {"name": "hum", "transforms": [{"type": "tone", "freq_hz": 50, "snr_db": 0}]}]
    path = write_config(tmp_path / "run.yaml", voices, {"name": "stub"}, conditions=conditions, seed=3)
    out = tmp_path / "hum.wav"
    result = invoke("audition", str(path), "-c", "hum", "--id", "v2", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "v2 under hum (tone freq_hz=50, snr_db=0)" in result.stdout
    written, rate = sf.read(out, dtype="float32")
    config = load_config(path)
    utt = next(u for u in prepare(config).manifest.utterances if u.id == "v2")
    expected = Simulator(prepare(config).manifest.utterances, 3, 16_000).render(
        config.conditions[1], utt, load_audio(utt), 16_000
    )
    assert rate == 16_000 and written.shape == expected.shape
    assert np.max(np.abs(written - expected)) < 2 / 32768 + 1e-6


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        (
            [{"name": "clean"}, {"name": "x", "transforms": [{"type": "tones", "freq_hz": 50}]}],
            "conditions[1].transforms[0]",
        ),
        (
            [{"name": "clean"}, {"name": "x", "transforms": [{"type": "tone", "freq_hz": 50}]}],
            "'conditions[1].transforms[0].tone.snr_db': Field required",
        ),
        (
            [{"name": "clean"}, {"name": "x", "transforms": [{"type": "bandpass", "low_hz": 900, "high_hz": 300}]}],
            "conditions[1].transforms[0].bandpass",
        ),
        ([{"name": "clean"}, {"name": "clean"}], "conditions[1].name: 'clean' is used twice"),
        (
            [{"name": "clean"}, {"name": "x", "transforms": [{"type": "noise", "file": "nope.wav", "snr_db": 5}]}],
            "'conditions[1].transforms[0].file': nope.wav not found",
        ),
        (
            [{"name": "clean"}, {"name": "x", "transforms": [{"type": "lowpass", "cutoff_hz": 9000}]}],
            "'conditions[1].transforms[0]': 9000 Hz is at or above the Nyquist frequency (8000 Hz)",
        ),
        (
            [
                {"name": "clean"},
                {"name": "x", "transforms": [{"type": "codec", "format": "opus", "bitrate_kbps": 300}]},
            ],
            "'conditions[1].transforms[0].codec': bitrate_kbps 300: opus encodes mono at 6–256 kbps",
        ),
    ],
)
def test_bad_conditions_exit_2_naming_the_yaml_path(tmp_path, voices, conditions, message):
    path = write_config(tmp_path / "run.yaml", voices, {"name": "stub"}, conditions=conditions)
    result = invoke("run", str(path))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_manifest_tag_named_condition_clashes(tmp_path, make_manifest):
    manifest = make_manifest([{"id": "a", "text": "alpha", "speaker": "s", "condition": "quiet"}])
    path = write_config(tmp_path / "run.yaml", manifest, {"name": "stub"}, conditions=CONDITIONS)
    result = invoke("run", str(path))
    assert result.returncode == 2 and "tag 'condition' clashes" in result.stderr


def test_no_bootstrap_no_permutations_still_reports_point_estimates(tmp_path, accents_manifest):
    path = write_config(
        tmp_path / "run.yaml",
        accents_manifest,
        {"name": "stub", "default_rate": 0.05, "error_rates": {"condition": {"phone": 0.2}}},
        conditions=CONDITIONS,
        stats={"min_speakers": 3, "min_words": 50, "bootstrap": 0, "permutations": 0},
    )
    metrics = run(prepare(load_config(path))).metrics
    phone = next(s for s in accent_block(metrics)["shifts"] if s["condition"] == "phone")
    assert phone["delta"] > 0.1 and phone["delta_ci"] is None and phone["interaction"] is None
    report = (tmp_path / "runs").glob("test-*/report.md")
    assert "Simulated conditions" in next(report).read_text()


def test_an_intersection_with_the_condition_is_labelled_both_and_kept_out_of_the_paired_block(
    tmp_path, accents_manifest
):
    path = write_config(
        tmp_path / "run.yaml",
        accents_manifest,
        {"name": "stub", "default_rate": 0.05},
        conditions=CONDITIONS,
        slices=[{"by": ["accent"]}, {"by": ["accent", "condition"]}],
        stats={"min_speakers": 3, "min_words": 50, "bootstrap": 100, "permutations": 100},
    )
    metrics = run(prepare(load_config(path))).metrics
    evidence = {d["name"]: d["evidence"] for d in metrics["dimensions"]}
    assert evidence == {"accent": "recorded", "accent × condition": "recorded × simulated", "condition": "simulated"}
    assert [d["name"] for d in metrics["conditions"]["dimensions"]] == ["accent"]


def test_audition_refuses_what_a_run_refuses_in_one_line(tmp_path, voices):
    conditions = [{"name": "clean"}, {"name": "whine", "transforms": [{"type": "tone", "freq_hz": 9000, "snr_db": 5}]}]
    path = write_config(tmp_path / "run.yaml", voices, {"name": "stub"}, conditions=conditions)
    result = invoke("audition", str(path), "-c", "whine", "--id", "v1", "-o", str(tmp_path / "x.wav"))
    assert result.returncode == 2 and "Nyquist" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_manifest_tag_named_condition_is_recorded_evidence_without_simulated_conditions(tmp_path, make_manifest):
    records = [
        {"id": f"{c}-{s}-{n}", "text": "alpha bravo charlie", "speaker": f"s{s}", "condition": c}
        for c in ("quiet", "noisy")
        for s in range(3)
        for n in range(4)
    ]
    path = write_config(tmp_path / "run.yaml", make_manifest(records), {"name": "stub", "default_rate": 0.1})
    outcome = run(prepare(load_config(path)))
    assert [(d["name"], d["evidence"]) for d in outcome.metrics["dimensions"]] == [("condition", "recorded")]
    assert outcome.metrics["conditions"] is None
    rescored = rescore(outcome.paths.root)
    assert [d["name"] for d in rescored["dimensions"]] == ["condition"]


def test_one_simulated_condition_is_still_named_in_the_report(tmp_path, accents_manifest):
    outcome = run_stub(
        tmp_path, accents_manifest, conditions=[{"name": "phone", "transforms": [{"type": "telephone"}]}]
    )
    assert outcome.metrics["conditions"] is None  # nothing to compare against
    assert (
        "- **Simulated conditions**: phone (1 transform); the first is the reference."
        in (outcome.paths.root / "report.md").read_text()
    )
