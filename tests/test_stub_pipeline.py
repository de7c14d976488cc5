"""End-to-end through the library with the stub backend: planted disparity, cache, failures, rescoring."""

from __future__ import annotations

import json

import jiwer
import pandas as pd
import pytest
from conftest import write_config

from harness.backends.base import Registry
from harness.config import load_config
from harness.decide.gate import load_side
from harness.decide.integrity import seal
from harness.errors import InputError
from harness.pipeline import prepare, report, rescore, run
from harness.stats.slices import SliceSpec


@pytest.fixture
def big_manifest(make_manifest):
    """600 utterances, 10 speakers per accent, 10 words each (no audio decoding needed by the stub)."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    records = []
    for accent in ("scottish", "welsh", "general"):
        for speaker in range(10):
            for n in range(20):
                text = " ".join(words[(n + k) % 10] for k in range(10))
                records.append(
                    {
                        "id": f"{accent}-{speaker}-{n}",
                        "text": text,
                        "speaker": f"{accent}{speaker}",
                        "accent": accent,
                        "noise": "clean",
                    }
                )
    return make_manifest(records)


def stub_config(tmp_path, manifest, **backend):
    return load_config(write_config(tmp_path / "run.yaml", manifest, {"name": "stub", **backend}))


def test_planted_disparity_is_recovered(tmp_path, big_manifest):
    config = stub_config(tmp_path, big_manifest, error_rates={"accent": {"scottish": 0.2}})
    outcome = run(prepare(config))
    accent = next(d for d in outcome.metrics["dimensions"] if d["name"] == "accent")
    wer = {s["label"]: s["wer"] for s in accent["slices"]}
    assert wer["scottish"] == pytest.approx(0.2, abs=0.03)  # 2000 words: sd ≈ 0.009
    assert wer["welsh"] == wer["general"] == 0.0
    assert accent["disparity"]["worst"] == "scottish"
    assert accent["disparity"]["gap"] == pytest.approx(wer["scottish"])


def test_run_directory_contents_agree_with_jiwer(tmp_path, big_manifest):
    config = stub_config(tmp_path, big_manifest, default_rate=0.1)
    outcome = run(prepare(config))
    root = outcome.paths.root
    assert root.parent == tmp_path / "runs" and root.name.startswith("test-")
    for name in ("config.yaml", "transcripts.parquet", "utterances.parquet", "metrics.json", "report.md"):
        assert (root / name).is_file(), name
    metrics = json.loads((root / "metrics.json").read_text())
    assert metrics["schema"] == "asrfair.metrics/6" and metrics["aggregate"] == "pooled"
    assert metrics["provenance"]["normalizer"].startswith("whisper-english@")
    assert metrics["provenance"]["manifest"]["sha256"]
    table = pd.read_parquet(root / "utterances.parquet")
    # Anyone can recompute the headline from the run directory alone.
    assert metrics["overall"]["wer"] == pytest.approx(jiwer.wer(table["ref_norm"].tolist(), table["hyp_norm"].tolist()))
    assert "| scottish |" in (root / "report.md").read_text()


def test_rerun_resumes_from_cache(tmp_path, big_manifest):
    config = stub_config(tmp_path, big_manifest, default_rate=0.1)
    first = run(prepare(config))
    second = run(prepare(config))
    assert (first.transcribed, first.from_cache) == (600, 0)
    assert (second.transcribed, second.from_cache) == (0, 600)
    assert second.metrics["overall"] == first.metrics["overall"]
    changed = stub_config(tmp_path, big_manifest, default_rate=0.2)  # new fingerprint, no stale reuse
    assert run(prepare(changed)).from_cache == 0


def test_stub_is_deterministic_and_order_free(tmp_path, big_manifest):
    registry = Registry.default()
    config = stub_config(tmp_path, big_manifest, default_rate=0.3, seed=7)
    utterances = prepare(config).manifest.utterances
    backend = registry.create("stub", {"default_rate": 0.3, "seed": 7})
    from harness.backends.base import AudioRequest

    forward = backend.transcribe([AudioRequest(u, None, 16000) for u in utterances])
    backward = backend.transcribe([AudioRequest(u, None, 16000) for u in reversed(utterances)])
    assert [t.text for t in forward] == [t.text for t in reversed(backward)]
    other_seed = registry.create("stub", {"default_rate": 0.3, "seed": 8}).transcribe(
        [AudioRequest(u, None, 16000) for u in utterances]
    )
    assert [t.text for t in forward] != [t.text for t in other_seed]


def test_failures_reported_per_slice_and_exit_three(tmp_path, big_manifest):
    config = stub_config(tmp_path, big_manifest, failure_rates={"accent": {"welsh": 0.5}})
    outcome = run(prepare(config))
    accent = next(d for d in outcome.metrics["dimensions"] if d["name"] == "accent")
    welsh = next(s for s in accent["slices"] if s["label"] == "welsh")
    assert 60 < welsh["failed"] < 140 and welsh["utterances"] + welsh["failed"] == 200
    assert welsh["wer"] == 0.0  # failures are not scored as deletions
    assert outcome.metrics["failures"]["count"] == welsh["failed"]
    from harness.errors import TooManyFailures

    with pytest.raises(TooManyFailures, match="rerun to retry"):
        outcome.raise_for_failures()
    # The failures are not cached, so a rerun retries exactly them.
    again = run(prepare(config))
    assert again.from_cache == 600 - welsh["failed"]


def test_rescore_with_new_slices_and_normalizer(tmp_path, big_manifest):
    config = stub_config(tmp_path, big_manifest, error_rates={"accent": {"scottish": 0.2}})
    outcome = run(prepare(config))
    metrics = rescore(outcome.paths.root, slices=[SliceSpec(by=["accent", "noise"])], normalizers=["basic"])
    assert [d["name"] for d in metrics["dimensions"]] == ["accent × noise"]
    assert metrics["provenance"]["normalizer"] == "basic@1"
    assert json.loads((outcome.paths.root / "metrics.json").read_text()) == metrics


def test_backend_that_never_decodes_is_keyed_by_audio_content(tmp_path):
    """A backend that sends the file itself (needs_audio=False) must not share one cache key."""
    from conftest import write_tone

    from harness.backends.base import Backend, Capabilities
    from harness.data.manifest import Utterance
    from harness.transcribe.cache import TranscriptCache
    from harness.transcribe.local import transcribe_all

    class ByFileSize(Backend):
        name = "by-size"
        capabilities = Capabilities(needs_audio=False)

        def transcribe_one(self, request):
            return str(request.utterance.audio.stat().st_size)

        def fingerprint(self):
            return {"backend": self.name}

    backend = ByFileSize(ByFileSize.Options())
    cache = TranscriptCache(tmp_path / "cache.sqlite")
    files = [write_tone(tmp_path / f"{i}.wav", seconds=0.1 * (i + 1)) for i in range(3)]
    utterances = [Utterance(id=f"u{i}", audio=f, text="x") for i, f in enumerate(files)]
    first = transcribe_all(utterances, backend, cache)
    assert len({t.text for t in first.transcripts.values()}) == 3
    write_tone(files[0], seconds=0.9)  # the same path with new content is not served from the cache
    second = transcribe_all(utterances, backend, cache)
    assert second.from_cache == {"u1", "u2"}
    assert second.transcripts["u0"].text != first.transcripts["u0"].text


def test_every_worker_of_a_backend_is_kept_busy(tmp_path):
    """A backend serving two batches at once gets two: each call waits for the other to start."""
    import threading

    from conftest import write_tone

    from harness.backends.base import Backend, Capabilities
    from harness.data.manifest import Utterance
    from harness.transcribe.cache import TranscriptCache
    from harness.transcribe.local import transcribe_all

    both_inside = threading.Barrier(2, timeout=60)  # broken (a failed transcript) unless two run at once

    class TwoReplicas(Backend):
        name = "two-replicas"
        capabilities = Capabilities(max_batch_size=8, workers=2)

        def transcribe_one(self, request):
            both_inside.wait()
            return f"{request.samples.size} samples on {threading.current_thread().name}"

        def fingerprint(self):
            return {"backend": self.name}

    cache = TranscriptCache(tmp_path / "cache.sqlite")
    files = [write_tone(tmp_path / f"{i}.wav", seconds=0.1) for i in range(4)]
    utterances = [Utterance(id=f"u{i}", audio=f, text="x") for i, f in enumerate(files)]
    first = transcribe_all(utterances, TwoReplicas(TwoReplicas.Options()), cache)
    assert all(t.status == "ok" for t in first.transcripts.values()), first.transcripts
    assert len({t.text.split(" on ")[1] for t in first.transcripts.values()}) == 2  # two model threads
    again = transcribe_all(utterances, TwoReplicas(TwoReplicas.Options()), cache)
    assert again.from_cache == {u.id for u in utterances}  # every result was cached on the way


def test_run_reports_intervals_tests_and_model(tmp_path, big_manifest):
    config = stub_config(tmp_path, big_manifest, default_rate=0.05, error_rates={"accent": {"scottish": 0.2}})
    metrics = run(prepare(config)).metrics
    accent = next(d for d in metrics["dimensions"] if d["name"] == "accent")
    scottish = next(s for s in accent["slices"] if s["label"] == "scottish")
    assert scottish["significantly_worse"] and accent["test"]["significant"]
    assert scottish["wer_ci"][0] < scottish["wer"] < scottish["wer_ci"][1]
    assert accent["disparity"]["gap_ci"][0] > 0.1
    effects = {(e["factor"], e["level"]): e for e in metrics["model"]["effects"]}
    # p = 1 - 0.95 * 0.8 = 0.24 against 0.05: a rate ratio near 4.8
    assert metrics["model"]["references"]["accent"] == "general"
    assert effects[("accent", "scottish")]["rate_ratio"] == pytest.approx(4.8, rel=0.25)
    assert effects[("accent", "welsh")]["ci"][0] < 1 < effects[("accent", "welsh")]["ci"][1]
    report = (next(tmp_path.joinpath("runs").glob("test-*")) / "report.md").read_text()
    assert "scottish ★" in report and "How to read this" in report and "rate model" in report


def test_no_injection_flags_nothing(tmp_path, big_manifest):
    metrics = run(prepare(stub_config(tmp_path, big_manifest, default_rate=0.1))).metrics
    accent = next(d for d in metrics["dimensions"] if d["name"] == "accent")
    assert not any(s["significantly_worse"] for s in accent["slices"])
    assert not accent["test"]["significant"]


def test_an_older_metrics_schema_is_refused_for_reports_with_the_fix_and_upgraded_by_a_rescore(tmp_path, big_manifest):
    """/6 changed statistics fields (issue 22): a /5 file's statistics are never rendered by this version
    (one-line InputError naming the file and 'asrfair score'); the gate, which reads its provenance
    only, still takes it; an unknown version is refused everywhere; a re-score rewrites it as /6."""
    root = run(prepare(stub_config(tmp_path, big_manifest, default_rate=0.1))).paths.root

    def stamp(schema: str) -> None:
        path = root / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "schema": schema}))
        seal(root)  # as scoring would have left it: the schema check, not the integrity check, must answer

    stamp("asrfair.metrics/5")
    with pytest.raises(InputError) as refused:
        report(root)
    message = str(refused.value)
    assert "\n" not in message and "metrics.json" in message and "'asrfair.metrics/5'" in message
    assert f"asrfair score {root}" in message
    assert load_side(root, "A").metrics["schema"] == "asrfair.metrics/5"
    stamp("asrfair.metrics/99")
    with pytest.raises(InputError, match=r"asrfair\.metrics/99"):
        load_side(root, "A")
    assert rescore(root)["schema"] == "asrfair.metrics/6"
    assert report(root).is_file()
