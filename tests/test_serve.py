"""``asrfair serve``: the OpenAI transcription protocol in front of any backend."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import ClassVar

import httpx
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from conftest import demo_records, write_config, write_jsonl
from loopback import LoopbackServer

from harness.backends.base import AudioRequest, Backend, Registry, Transcript
from harness.config import load_config
from harness.errors import InputError
from harness.pipeline import prepare, run
from harness.serve import create_app, load_backend

WHISPER = {"name": "faster-whisper", "model": "tiny.en", "compute_type": "int8", "beam_size": 1, "device": "cpu"}


class SampleCounter(Backend):
    """Answers with what it heard: the sample count and the language, so decoding is checkable."""

    name: ClassVar[str] = "sample-counter"

    def transcribe(self, batch: Sequence[AudioRequest]) -> list[Transcript]:
        out = []
        for r in batch:
            assert r.samples is not None
            if r.samples.max() > 0.9:
                out.append(Transcript.failed(r.utterance.id, "EngineError: clipped input"))
            else:
                out.append(Transcript.ok(r.utterance.id, f"{r.samples.size} samples {r.utterance.language}"))
        return out

    def fingerprint(self) -> dict[str, str]:
        return {"engine": self.name}


def wav(seconds: float, rate: int, amplitude: float = 0.1) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, amplitude * np.ones(int(seconds * rate)), rate, format="WAV")
    return buffer.getvalue()


@pytest.fixture
def client():
    app = create_app(SampleCounter(SampleCounter.Options()), "counter", api_key="k3y")
    with LoopbackServer(app) as server, httpx.Client(base_url=f"{server.url}/v1") as http:
        http.headers["Authorization"] = "Bearer k3y"
        yield http


def post(http: httpx.Client, audio: bytes = b"", **form: str) -> httpx.Response:
    return http.post("/audio/transcriptions", data={"model": "counter", **form}, files={"file": ("a.wav", audio)})


def test_upload_is_decoded_and_resampled_to_the_backend_rate(client):
    response = post(client, wav(0.5, 8_000), language="fr")
    assert response.status_code == 200
    assert response.json() == {"text": "8000 samples fr"}
    assert post(client, wav(0.25, 16_000), response_format="text").text == "4000 samples en"
    verbose = post(client, wav(0.25, 16_000), response_format="verbose_json").json()
    assert verbose["duration"] == 0.25 and verbose["text"] == "4000 samples en"
    assert client.get("/models").json()["data"][0]["id"] == "counter"


def test_protocol_errors_use_openai_shapes(client):
    assert post(client, b"not audio").json()["error"]["type"] == "invalid_request_error"
    assert post(client, b"not audio").status_code == 400
    wrong_model = post(client, wav(0.1, 16_000), model="whisper-1")
    assert wrong_model.status_code == 404 and "serves 'counter'" in wrong_model.json()["error"]["message"]
    assert post(client, wav(0.1, 16_000), response_format="srt").status_code == 400
    failed = post(client, wav(0.1, 16_000, amplitude=0.95))
    assert failed.status_code == 500 and failed.json()["error"]["message"] == "EngineError: clipped input"
    client.headers["Authorization"] = "Bearer wrong"
    assert post(client, wav(0.1, 16_000)).status_code == 401


def test_backend_file_errors_name_the_file(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text("name: x\n")
    with pytest.raises(InputError, match="needs a 'backend:' mapping"):
        load_backend(path)
    path.write_text(yaml.safe_dump({"backend": {"name": "stub", "nonsense": 1}}))
    with pytest.raises(Exception, match="nonsense"):
        load_backend(path)
    registry = Registry({"sample-counter": SampleCounter})
    path.write_text(yaml.safe_dump({"backend": {"name": "sample-counter"}}))
    assert load_backend(path, registry).name == "sample-counter"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_served_whisper_gives_the_same_transcripts_as_whisper_directly(tmp_path):
    """`asrfair serve` (the real command) with faster-whisper, read by openai-compatible."""
    manifest = write_jsonl(tmp_path / "manifest.jsonl", demo_records(per_dialect=1))
    serve_config = write_config(tmp_path / "serve.yaml", manifest, WHISPER)
    port = _free_port()
    command = [sys.executable, "-m", "harness", "serve", "--backend", str(serve_config), "--port", str(port)]
    server = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"serve did not start: {server.stderr.read() if server.stderr else ''}")
                time.sleep(0.2)
        remote = {
            "name": "openai-compatible",
            "base_url": f"http://127.0.0.1:{port}/v1",
            "model": "faster-whisper",
            "api_key_env": None,
            "concurrency": 4,
        }
        via_http = run(prepare(load_config(write_config(tmp_path / "remote.yaml", manifest, remote))))
    finally:
        server.terminate()
        server.wait(timeout=30)
    direct = run(prepare(load_config(write_config(tmp_path / "direct.yaml", manifest, WHISPER))))
    texts = [pd.read_parquet(o.paths.transcripts).set_index("id")["text"] for o in (via_http, direct)]
    assert len(texts[0]) == 6 and (texts[0].str.len() > 0).all()
    pd.testing.assert_series_equal(texts[0].sort_index(), texts[1].sort_index())
    assert via_http.metrics["overall"] == direct.metrics["overall"]
