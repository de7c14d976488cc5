"""The CLI through a real subprocess: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from cli import asrfair, assert_clean_error, start
from conftest import DEMO, free_port, install_backend_plugin, write_config


def install_plugin(directory: Path, name: str, body: str) -> None:
    """A plugin backend ``name`` whose class body is ``body``."""
    source = (
        "from harness.backends.base import Backend\n"
        f"class Plugin(Backend):\n    name = '{name}'\n{body}"
        f"    def fingerprint(self):\n        return {{'backend': '{name}'}}\n"
    )
    install_backend_plugin(directory, f"{name}_asr", source, name, "Plugin")


def test_validate_demo_ok():
    result = asrfair("validate", str(DEMO / "manifest.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "240 utterances, 18 speakers" in result.stdout and "0 errors" in result.stdout


def test_validate_bad_manifest_exit_2(make_manifest):
    path = make_manifest([{"id": "a", "text": "x", "speaker": "s"}, {"id": "a", "text": "", "age": 3}])
    result = asrfair("validate", str(path))
    assert_clean_error(result, 2, f"{path}:2: field 'id'", f"{path}:2: field 'text'", f"{path}:2: field 'age'")
    assert "3 errors" in result.stdout


def test_validate_missing_speaker_warns_exit_0(make_manifest):
    result = asrfair("validate", str(make_manifest([{"id": "a", "text": "x"}])))
    assert result.returncode == 0 and "warning" in result.stderr and "1 warnings" in result.stdout


def test_run_stub_json_and_score(tmp_path, make_manifest):
    manifest = make_manifest(
        [
            {"id": f"u{i}", "text": "the quick brown fox", "speaker": f"s{i % 3}", "accent": "a" if i % 2 else "b"}
            for i in range(12)
        ]
    )
    config = write_config(tmp_path / "run.yaml", manifest, {"name": "stub", "default_rate": 0.3})
    result = asrfair("run", str(config), "--json", "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["overall"]["utterances"] == 12
    (run_dir,) = (p for p in (tmp_path / "out").iterdir() if p.name.startswith("test-"))
    slices = tmp_path / "slices.yaml"
    slices.write_text("slices:\n  - by: accent\n    name: just-accent\n")
    rescored = asrfair("score", str(run_dir), "--slices", str(slices))
    assert rescored.returncode == 0, rescored.stderr
    assert "WER by just-accent" in rescored.stdout
    model = asrfair("model", str(run_dir), "--json")
    assert model.returncode == 0, model.stderr
    assert json.loads(model.stdout)["factors"] == ["accent"]
    assert_clean_error(asrfair("model", str(run_dir), "--factors", "acent"), 2, "acent are not tags of this run")


def test_run_stub_failures_exit_3(tmp_path, make_manifest):
    manifest = make_manifest([{"id": f"u{i}", "text": "a b c", "speaker": "s", "accent": "x"} for i in range(10)])
    config = write_config(tmp_path / "run.yaml", manifest, {"name": "stub", "failure_rates": {"accent": {"x": 1.0}}})
    result = asrfair("run", str(config))
    assert_clean_error(result, 3, "10 utterances failed", "max_failure_rate")
    assert "failed 10" in result.stdout  # what was computed is still shown and written


@pytest.mark.parametrize(
    ("backend", "extra", "fragments"),
    [
        ({"name": "stubb"}, {}, ["unknown backend 'stubb'", "did you mean 'stub'"]),
        ({"name": "stub", "eror_rate": 1}, {}, ["'eror_rate': unknown key"]),
        ({"name": "stub"}, {"normaliser": "basic"}, ["run.yaml: 'normaliser': unknown key"]),
        ({"name": "stub"}, {"normalizer": "fancy"}, ["unknown normalizer 'fancy'"]),
        ({"name": "stub"}, {"slices": [{"by": "acent"}]}, ["did you mean 'accent'"]),
        ({"name": "stub"}, {"slices": []}, ["defines no dimension"]),
    ],
)
def test_run_bad_config_exit_2(tmp_path, make_manifest, backend, extra, fragments):
    manifest = make_manifest([{"id": "a", "text": "x y", "speaker": "s", "accent": "q"}])
    config = write_config(tmp_path / "run.yaml", manifest, backend, **extra)
    assert_clean_error(asrfair("run", str(config)), 2, *fragments)


def test_run_bad_yaml_and_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbackend: {name: stub\n")
    assert_clean_error(asrfair("run", str(bad)), 2, "bad YAML")
    assert_clean_error(asrfair("run", str(tmp_path / "none.yaml")), 2, "config not found")
    assert_clean_error(asrfair("score", str(tmp_path)), 2, "not a finished run directory")


def test_backends_lists_builtins_and_entry_points(tmp_path):
    install_plugin(
        tmp_path,
        "acme",
        "    description = 'third-party test backend'\n    def transcribe_one(self, request):\n        return 'acme'\n",
    )
    result = asrfair("backends", "--json", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    listing = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert {"stub", "faster-whisper", "acme"} <= set(listing)
    assert listing["acme"]["description"] == "third-party test backend"
    assert "beam_size" in listing["faster-whisper"]["options"]
    assert "faster_whisper" not in result.stderr  # listing imports no engine


def test_unwritable_output_is_exit_2(tmp_path, make_manifest):
    manifest = make_manifest([{"id": "a", "text": "x y", "speaker": "s"}])
    config = write_config(tmp_path / "run.yaml", manifest, {"name": "stub"})
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_clean_error(asrfair("run", str(config), "--output", str(blocker)), 2, "cannot create the run directory")


def test_internal_error_is_exit_4_not_1(tmp_path, make_manifest):
    install_plugin(tmp_path, "broken", "    def transcribe(self, batch):\n        return []\n")
    manifest = make_manifest([{"id": "a", "text": "x y", "speaker": "s"}])
    config = write_config(tmp_path / "run.yaml", manifest, {"name": "broken"})
    result = asrfair("run", str(config), env={"PYTHONPATH": str(tmp_path)})
    assert_clean_error(result, 4, "internal error", "one transcript per request")


def test_python_dash_m_and_help():
    result = asrfair("--help")
    assert result.returncode == 0 and "validate" in result.stdout


def test_interrupt_exits_130_and_rerun_resumes(tmp_path, make_manifest):
    import signal
    import sqlite3
    import time

    install_plugin(
        tmp_path,
        "slow",
        "    def transcribe_one(self, request):\n"
        "        import time\n        time.sleep(0.05)\n        return request.utterance.text\n",
    )
    # distinct segments, so each utterance has its own cache key (the key is what the backend hears)
    manifest = make_manifest(
        [{"id": f"u{i}", "text": "a b", "speaker": "s", "offset": i / 1000, "duration": 0.1} for i in range(400)]
    )
    config = write_config(tmp_path / "run.yaml", manifest, {"name": "slow"})
    env = {"PYTHONPATH": str(tmp_path)}
    proc = start("run", str(config), env=env)
    cache = tmp_path / "runs" / ".cache" / "transcripts.sqlite"
    deadline = time.monotonic() + 60
    done = 0
    while done < 10 and time.monotonic() < deadline:
        time.sleep(0.2)
        if cache.exists():
            with contextlib.suppress(sqlite3.OperationalError), sqlite3.connect(cache) as db:  # table not made yet
                done = db.execute("SELECT count(*) FROM transcripts").fetchone()[0]
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "rerun the same command to resume" in err and "Traceback" not in err
    resumed = asrfair("run", str(config), "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["overall"]["wer"] == 0.0
    cached = int(resumed.stderr.split(" from cache")[0].rsplit(", ", 1)[1])
    assert 10 <= cached < 400


def test_serve_and_remote_backends_fail_in_one_line(tmp_path, make_manifest):
    assert_clean_error(asrfair("serve", "--backend", str(tmp_path / "none.yaml")), 2, "none.yaml", "not found")
    config = tmp_path / "serve.yaml"
    config.write_text("backend: {name: openai-compatible, api_key_env: ASRFAIR_UNSET_KEY}\n")
    port = str(free_port())  # the default 8000 may be taken on a shared machine
    unset = asrfair("serve", "--backend", str(config), "--port", port, env={"ASRFAIR_UNSET_KEY": ""})
    assert_clean_error(unset, 2, "ASRFAIR_UNSET_KEY is not set")
    named = asrfair("serve", "--backend", str(config), "--api-key-env", "ASRFAIR_UNSET_KEY", "--port", port)
    assert_clean_error(named, 2, "not set")
    manifest = make_manifest([{"id": "u1", "text": "a b", "speaker": "s"}])
    run_config = write_config(
        tmp_path / "run.yaml", manifest, {"name": "openai-compatible", "api_key_env": "ASRFAIR_UNSET_KEY"}
    )
    assert_clean_error(asrfair("run", str(run_config)), 2, "ASRFAIR_UNSET_KEY is not set")
