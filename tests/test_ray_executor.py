"""The Ray executor on a real local Ray cluster: the same metrics as the local executor, a dead
actor's batch retried, a rerun served from the cache."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli import asrfair, start
from conftest import REPO, demo_records, install_backend_plugin, write_config, write_jsonl
from fakes.openai import openai_app
from loopback import InFlight, LoopbackServer, Oracle, tone_corpus

from harness.backends.faster_whisper import FasterWhisperBackend
from harness.backends.openai_compatible import OpenAICompatibleBackend
from harness.backends.stub import StubBackend
from harness.config import ExecuteConfig
from harness.transcribe.ray import actor_count, worker_options

pytest.importorskip("ray")

REMOTE_KEY = "sk-ray-test-5d1e-do-not-leak"
STATS = {"min_speakers": 1, "min_words": 1, "bootstrap": 200}
STUB = {"name": "stub", "default_rate": 0.05, "error_rates": {"accent": {"scottish": 0.2}}, "seed": 3}

DYING = '''
import os
from pathlib import Path
from harness.backends.base import Capabilities
from harness.backends.stub import StubBackend

class DyingStub(StubBackend):
    """The stub, whose process dies in the middle of its third batch, once per test (a marker file)."""
    name = "dying-stub"
    capabilities = Capabilities(needs_audio=True, max_batch_size=8)
    calls = 0

    def transcribe(self, batch):
        DyingStub.calls += 1
        marker = Path(os.environ["ASRFAIR_DIED"])
        if DyingStub.calls == 3 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)  # the actor's process is gone, mid-batch, nothing returned
        return super().transcribe(batch)

    def fingerprint(self):
        return {**super().fingerprint(), "backend": "dying-stub"}
'''


def ray_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return asrfair(*args, env={"RAY_AUTH_MODE": "disabled", **(env or {})}, timeout=600)


def comparable(metrics: dict) -> dict:
    """metrics.json without what differs between two runs of one config: when, where, which executor."""
    # provenance says how it ran; throughput is each run's own timing (and what the cache served it)
    return {key: value for key, value in metrics.items() if key not in {"provenance", "throughput"}}


def run_json(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[dict, str]:
    result = ray_cli("run", str(config), "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    manifest = write_jsonl(data / "manifest.jsonl", demo_records(8, into=data))  # 48 clips, 6 dialects
    return write_config(
        tmp_path / "run.yaml", manifest, STUB, stats={"min_speakers": 1, "min_words": 1, "bootstrap": 200}
    )


@pytest.mark.slow  # a Ray cluster, twice
def test_ray_metrics_equal_the_local_executor_and_a_rerun_is_cached(demo_config, tmp_path):
    local, _ = run_json(demo_config, "-o", str(tmp_path / "local"))
    ray, stderr = run_json(demo_config, "-o", str(tmp_path / "ray"), "--executor", "ray", "--workers", "2")
    assert comparable(ray) == comparable(local)
    assert ray["overall"]["utterances"] == 48 and ray["overall"]["errors"] > 0
    assert "(48 transcribed, 0 from cache)" in stderr
    assert ray["provenance"]["config"]["execute"] == {
        "executor": "ray", "workers": 2, "cpus_per_worker": 1.0, "gpus_per_worker": 0.0, "address": None,
        "max_restarts": 3,
    }  # fmt: skip
    again, stderr = run_json(demo_config, "-o", str(tmp_path / "local"), "--executor", "ray", "--workers", "2")
    assert "(0 transcribed, 48 from cache)" in stderr  # the local executor's cache serves the Ray run
    assert comparable(again) == comparable(local)


@pytest.mark.slow  # a Ray cluster per case
@pytest.mark.parametrize("restarts", [3, 0], ids=["ray-restarts-the-actor", "another-actor-takes-the-batch"])
def test_a_dead_actor_has_its_batch_retried_and_nothing_changes(tmp_path, restarts):
    plugin = install_backend_plugin(tmp_path / "plugin", "dying_asr", DYING, "dying-stub", "DyingStub")
    data = tmp_path / "data"
    manifest = write_jsonl(data / "manifest.jsonl", demo_records(8, into=data))
    backend = {**STUB, "name": "dying-stub"}
    config = write_config(tmp_path / "run.yaml", manifest, backend, stats=STATS, execute={"max_restarts": restarts})
    marker = tmp_path / "died"
    env = {"PYTHONPATH": str(plugin), "ASRFAIR_DIED": str(marker)}
    killed, stderr = run_json(config, "-o", str(tmp_path / "ray"), "--executor", "ray", "--workers", "2", env=env)
    assert marker.exists(), stderr  # an actor did die mid-batch
    assert "(48 transcribed, 0 from cache)" in stderr  # every batch came back, the dead one's included
    if restarts == 0:
        assert "an actor died" in stderr and "its batch goes to another actor" in stderr
    # the same config on the local executor (the marker stays, so nothing dies there)
    local, _ = run_json(config, "-o", str(tmp_path / "local"), env=env)
    assert comparable(killed) == comparable(local)
    assert killed["overall"]["failed"] == 0


@pytest.mark.slow
def test_faster_whisper_on_ray_matches_the_local_executor(tmp_path):
    pytest.importorskip("faster_whisper")
    data = tmp_path / "data"
    manifest = write_jsonl(data / "manifest.jsonl", demo_records(1, into=data))  # 6 clips
    backend = {"name": "faster-whisper", "beam_size": 1, "cpu_threads": 1}
    config = write_config(tmp_path / "run.yaml", manifest, backend, stats={"min_speakers": 1, "min_words": 1})
    local, _ = run_json(config, "-o", str(tmp_path / "local"))
    ray, _ = run_json(config, "-o", str(tmp_path / "ray"), "--executor", "ray", "--workers", "2")
    assert comparable(ray) == comparable(local)
    assert 0 < local["overall"]["wer"] < 1


def test_remote_limits_are_divided_among_the_actors():
    options = {"base_url": "http://127.0.0.1:1/v1", "concurrency": 8, "rate_limit": 10.0}
    assert worker_options(OpenAICompatibleBackend, options, 3) == {**options, "concurrency": 2, "rate_limit": 10 / 3}
    assert actor_count(OpenAICompatibleBackend, {**options, "concurrency": 2}, 4) == 2  # one request in flight each
    assert worker_options(StubBackend, {"seed": 1}, 4) == {"seed": 1}  # a local model: nothing to divide
    assert actor_count(FasterWhisperBackend, {}, 4) == 4


def test_execute_config_and_cli_errors(demo_config, tmp_path):
    assert ExecuteConfig().executor == "local"
    with pytest.raises(ValueError, match="address: only for executor: ray"):
        ExecuteConfig(address="auto")
    result = ray_cli("run", str(demo_config), "--executor", "spark")
    assert result.returncode == 2 and "'execute.executor'" in result.stderr and "Traceback" not in result.stderr


SLOW = """
import time
from harness.backends.base import Capabilities
from harness.backends.stub import StubBackend

class SlowStub(StubBackend):
    name = "slow-stub"
    capabilities = Capabilities(needs_audio=True, max_batch_size=4)

    def transcribe(self, batch):
        time.sleep(0.25)
        return super().transcribe(batch)

    def fingerprint(self):
        return {**super().fingerprint(), "backend": "slow-stub"}
"""


@pytest.mark.slow  # a Ray cluster, twice
def test_ctrl_c_stops_a_ray_run_after_its_batches_in_flight_and_a_rerun_resumes(tmp_path):
    plugin = install_backend_plugin(tmp_path / "plugin", "slow_asr", SLOW, "slow-stub", "SlowStub")
    data = tmp_path / "data"
    manifest = write_jsonl(data / "manifest.jsonl", demo_records(8, into=data))
    config = write_config(tmp_path / "run.yaml", manifest, {**STUB, "name": "slow-stub"}, stats=STATS)
    env = {"RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(plugin)}
    args = ["run", str(config), "-o", str(tmp_path / "ray"), "--executor", "ray"]
    proc = start(*args, env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    cache = tmp_path / "ray" / ".cache" / "transcripts.sqlite"
    deadline = time.monotonic() + 120
    while not cache.exists() or cached_rows(cache) == 0:  # some batches are in: stop mid-run
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "rerun the same command to resume" in stderr and "Traceback" not in stderr
    done = cached_rows(cache)
    assert 0 < done < 48
    resumed, stderr = run_json(
        config, "-o", str(tmp_path / "ray"), "--executor", "ray", env={"PYTHONPATH": str(plugin)}
    )
    assert f"({48 - done} transcribed, {done} from cache)" in stderr
    local, _ = run_json(config, "-o", str(tmp_path / "local"), env={"PYTHONPATH": str(plugin)})
    assert comparable(resumed) == comparable(local)


def cached_rows(cache: Path) -> int:
    with sqlite3.connect(cache) as db:
        try:
            return db.execute("SELECT count(*) FROM transcripts").fetchone()[0]
        except sqlite3.OperationalError:  # the table is not made yet
            return 0


def test_ray_is_imported_only_by_runs_that_use_it(demo_config, tmp_path):
    probe = (
        "import sys\n"
        "from harness.cli import main\n"
        "import harness.pipeline, harness.transcribe.ray\n"
        "try:\n"
        f"    main(['run', {str(demo_config)!r}, '-o', {str(tmp_path / 'out')!r}])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        "print('ray' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=False,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.slow  # a Ray cluster
def test_a_remote_api_keeps_its_global_concurrency_across_actors(tmp_path, monkeypatch):
    """Two actors share the config's concurrency of 4 (2 each): the server never sees more than 4. The
    server holds the first requests until a third arrives (one actor alone sends 2), so the actors
    overlap however late the second starts on a loaded machine."""
    monkeypatch.setenv("ASRFAIR_TEST_KEY", REMOTE_KEY)  # before Ray starts: its workers inherit it
    corpus = tone_corpus(tmp_path / "corpus", 24)
    counting = InFlight(openai_app(Oracle.for_manifest(corpus), api_key=REMOTE_KEY), latency=0.05, hold_until=3)
    with LoopbackServer(counting) as server:
        backend = {"name": "openai-compatible", "base_url": f"{server.url}/v1", "api_key_env": "ASRFAIR_TEST_KEY",
                   "concurrency": 4, "timeout": 300}  # fmt: skip  (a held request outlives the default 60 s)
        config = write_config(tmp_path / "run.yaml", corpus, backend, stats=STATS)
        on_ray, stderr = run_json(config, "-o", str(tmp_path / "ray"), "--executor", "ray", "--workers", "2")
        assert 2 < counting.max <= 4  # both actors at work, neither above its share
        assert "(24 transcribed, 0 from cache)" in stderr
        local, _ = run_json(config, "-o", str(tmp_path / "local"))
    assert comparable(on_ray) == comparable(local)
    assert on_ray["overall"]["wer"] == 0.0 and on_ray["overall"]["failed"] == 0
