"""``asrfair serve``: the OpenAI transcription protocol in front of any backend."""

from __future__ import annotations

import io
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPResponse
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
from harness.serve import serve as serve_forever

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
    manifest = write_jsonl(tmp_path / "manifest.jsonl", demo_records(per_dialect=1, into=tmp_path))
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


class Gated(Backend):
    """Holds each transcription until ``release`` is set; counts calls and the most run at once."""

    name: ClassVar[str] = "gated"

    def __init__(self, options: Backend.Options) -> None:
        super().__init__(options)
        self.release = threading.Event()
        self.calls = self.running = self.most = 0
        self._lock = threading.Lock()

    def transcribe(self, batch: Sequence[AudioRequest]) -> list[Transcript]:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.release.wait(10)
            return [Transcript.ok(r.utterance.id, "done") for r in batch]
        finally:
            with self._lock:
                self.running -= 1

    def fingerprint(self) -> dict[str, str]:
        return {"engine": self.name}


def test_serve_binds_loopback_with_openai_limits_by_default(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from harness import cli, serve

    seen: dict = {}
    monkeypatch.setattr(serve, "serve", lambda backend, **options: seen.update(options))
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"backend": {"name": "stub"}}))
    result = CliRunner().invoke(cli.app, ["serve", "--backend", str(config)])
    assert result.exit_code == 0, result.output
    assert seen == {
        "host": "127.0.0.1",
        "port": 8000,
        "model_name": "stub",
        "api_key": None,
        "max_upload_mb": 25.0,
        "request_timeout": 120.0,
    }
    assert CliRunner().invoke(cli.app, ["serve", "--backend", str(config), "--max-upload-mb", "0"]).exit_code == 2
    assert serve_forever.__kwdefaults__["max_upload_mb"] == 25.0  # the library default matches the CLI's


def test_the_api_key_is_required_on_every_route():
    app = create_app(Registry.default().create("stub", {}), "stub", api_key="k3y")
    with LoopbackServer(app) as server, httpx.Client(base_url=f"{server.url}/v1") as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "k3y"}):
            http.headers = httpx.Headers(headers)
            for response in (post(http, wav(0.1, 16_000), model="stub"), http.get("/models")):
                assert response.status_code == 401, headers
                assert response.json()["error"] == {
                    "message": "Incorrect API key provided",
                    "type": "invalid_request_error",
                }
        http.headers = httpx.Headers({"Authorization": "Bearer k3y"})
        assert post(http, wav(0.1, 16_000), model="stub").status_code == 200
        assert http.get("/models").json()["data"][0]["id"] == "stub"


def test_uploads_that_are_not_audio_are_refused_before_the_backend(tmp_path):
    backend = Gated(Gated.Options())
    backend.release.set()
    uploads = {
        "notes.txt": (b"hello, this is a transcript, not a recording\n", "is text, not audio"),
        "form.json": (b'{"file": "a.wav", "model": "whisper-1"}', "is text, not audio"),
        "empty.wav": (b"", "is empty, not audio"),
        "noise.wav": (random.Random(0).randbytes(20_000), "is not audio in any format"),
        "..": (random.Random(1).randbytes(100), "is not audio in any format"),
    }
    with LoopbackServer(create_app(backend, "gated")) as server, httpx.Client(base_url=f"{server.url}/v1") as http:
        for name, (content, says) in uploads.items():
            response = http.post("/audio/transcriptions", data={"model": "gated"}, files={"file": (name, content)})
            assert response.status_code == 400, name
            assert (
                says in response.json()["error"]["message"]
                and response.json()["error"]["type"] == "invalid_request_error"
            )
        assert backend.calls == 0
        assert post(http, wav(0.1, 16_000), model="gated").json() == {"text": "done"}


def test_an_upload_over_the_limit_is_refused_while_it_streams():
    app = create_app(Registry.default().create("stub", {}), "stub", max_upload_mb=1)
    limit = 1024 * 1024
    with LoopbackServer(app) as server, httpx.Client(base_url=f"{server.url}/v1") as http:
        assert post(http, wav((limit - 4096) / 2 / 16_000, 16_000), model="stub").status_code == 200  # 1 MB fits
        declared = post(http, bytes(3 * limit), model="stub")  # Content-Length says too much: not even read
        assert declared.status_code == 413
        assert declared.json()["error"] == {
            "message": "the upload is larger than this server's limit of 1 MB",
            "type": "invalid_request_error",
        }
        # A chunked body has no Content-Length: it is counted as it arrives. The body is left
        # unfinished, so a server that buffered it all before checking would never answer.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
            )
            part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
            chunk = bytes(64 * 1024)
            for piece in [part] + [chunk] * (limit // len(chunk) + 2):
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            answer = HTTPResponse(sock)
            answer.begin()
            assert answer.status == 413 and b"larger than this server's limit" in answer.read()


def test_a_slow_transcription_answers_504_and_the_backend_still_runs_one_at_a_time():
    backend = Gated(Gated.Options())
    app = create_app(backend, "gated", request_timeout=0.3)
    with (
        LoopbackServer(app) as server,
        httpx.Client(base_url=f"{server.url}/v1", timeout=10) as http,
        ThreadPoolExecutor(2) as pool,
    ):
        start = time.monotonic()
        running, queued = pool.map(lambda _: post(http, wav(0.1, 16_000), model="gated"), range(2))
        assert time.monotonic() - start < 2  # the backend is still holding the first one
        for response in (running, queued):
            assert response.status_code == 504
            assert response.json()["error"] == {
                "message": "no answer within the server's request timeout (0.3 s)",
                "type": "server_error",
            }
        assert backend.calls == 1  # the queued request timed out waiting and never reached the backend
        backend.release.set()
        assert post(http, wav(0.1, 16_000), model="gated").json() == {"text": "done"}
    assert (backend.calls, backend.most) == (2, 1)
