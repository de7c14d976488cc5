"""``asrfair serve``: the OpenAI transcription protocol in front of any backend."""

from __future__ import annotations

import io
import json
import logging
import os
import random
import socket
import subprocess
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
from cli import start
from conftest import demo_records, free_port, install_backend_plugin, write_config, write_jsonl
from loopback import LoopbackServer

from harness.backends.base import AudioRequest, Backend, Capabilities, Registry, Transcript
from harness.config import load_config
from harness.errors import InputError
from harness.pipeline import prepare, run
from harness.serve import Limits, bind, create_app, load_backend, uvicorn_config

WHISPER = {"name": "faster-whisper", "model": "tiny.en", "compute_type": "int8", "beam_size": 1, "device": "cpu"}


class SampleCounter(Backend):
    """Answers with what it heard: the sample count and the language, so decoding is checkable."""

    name: ClassVar[str] = "sample-counter"
    capabilities: ClassVar[Capabilities] = Capabilities(detects_language=True)

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
    assert post(client, wav(0.25, 16_000), response_format="text", language="en").text == "4000 samples en"
    verbose = post(client, wav(0.25, 16_000), response_format="verbose_json", language="en").json()
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


@pytest.mark.slow
def test_served_whisper_gives_the_same_transcripts_as_whisper_directly(tmp_path):
    """`asrfair serve` (the real command) with faster-whisper, read by openai-compatible."""
    manifest = write_jsonl(tmp_path / "manifest.jsonl", demo_records(per_dialect=1, into=tmp_path))
    serve_config = write_config(tmp_path / "serve.yaml", manifest, WHISPER)
    server, url = start_serve(["--backend", str(serve_config)])
    try:
        remote = {
            "name": "openai-compatible",
            "base_url": url,
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
    capabilities: ClassVar[Capabilities] = Capabilities(detects_language=True)  # it ignores the language

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


def test_the_cli_defaults_are_the_library_limits_and_bind_loopback():
    import inspect

    from harness.cli.serve import serve_command

    defaults = {name: p.default for name, p in inspect.signature(serve_command).parameters.items()}
    assert defaults["host"] == "127.0.0.1" and defaults["port"] == 8000
    limits = Limits()
    assert (defaults["max_upload_mb"], defaults["request_timeout"]) == (limits.max_upload_mb, limits.request_timeout)
    assert (defaults["header_timeout"], defaults["body_timeout"]) == (limits.header_timeout, limits.body_timeout)
    assert (defaults["max_audio_seconds"], defaults["max_connections"]) == (limits.max_audio_s, limits.max_connections)
    assert limits.max_upload_mb == 25.0  # OpenAI's own limit


def test_a_bad_or_busy_port_or_host_is_one_line_exit_2(tmp_path):
    """Issue 29 item 10: --port 99999 listened on 34463 and a busy port exited 3."""
    from typer.testing import CliRunner

    from harness import cli

    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"backend": {"name": "stub"}}))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        cases = {
            ("--port", "99999"): "--port 99999: a TCP port is 1-65535",
            ("--port", "0"): "--port 0: a TCP port is 1-65535",
            ("--port", "-5"): "--port -5: a TCP port is 1-65535",
            ("--port", str(taken)): f"--port {taken}: cannot listen there (Address already in use)",
            ("--host", "192.0.2.1"): "--host 192.0.2.1 --port 8000: cannot listen there",  # TEST-NET-1: not ours
            ("--host", "not a host name"): "--host not a host name: not an address",
        }
        for args, says in cases.items():
            result = CliRunner().invoke(cli.app, ["serve", "--backend", str(config), *args])
            assert result.exit_code == 2, (args, result.output)
            assert says in result.output and len(result.output.strip().splitlines()) == 1, result.output
    with pytest.raises(InputError, match="a TCP port is 1-65535"):
        bind("127.0.0.1", 65536)


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
    app = create_app(Registry.default().create("stub", {}), "stub", limits=Limits(max_upload_mb=1))
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
    app = create_app(backend, "gated", limits=Limits(request_timeout=0.3))
    with (
        LoopbackServer(app) as server,
        httpx.Client(base_url=f"{server.url}/v1", timeout=10) as http,
        ThreadPoolExecutor(2) as pool,
    ):
        running, queued = pool.map(lambda _: post(http, wav(0.1, 16_000), model="gated"), range(2))
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


def flac_silence(seconds: int, rate: int = 16_000, *, hide_length: bool = False) -> bytes:
    """Silence as FLAC, which compresses it ~300-fold: ten minutes is about 28 kB.

    ``hide_length`` zeroes the STREAMINFO total-samples field (the low 36 bits of bytes 18-25:
    "fLaC", a 4-byte block header, then 10 bytes of block and frame sizes, 20 bits of rate, 3 of
    channels, 5 of sample size; https://xiph.org/flac/format.html#metadata_block_streaminfo).
    The format allows 0 as "unknown", so only decoding can tell how long the file is.
    """
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", rate, 1, format="FLAC") as out:
        for _ in range(seconds // 10):
            out.write(np.zeros(10 * rate, dtype="float32"))
    data = bytearray(buffer.getvalue())
    if hide_length:
        data[21] &= 0xF0
        data[22:26] = bytes(4)
    return bytes(data)


def test_long_audio_is_refused_by_its_header_and_decoding_stops_at_the_limit():
    """Issue 29 item 3: a 1.8 MB FLAC of 10 h of silence was decoded whole (3 GB, five at once 9 GB)."""
    backend = Gated(Gated.Options())
    backend.release.set()
    app = create_app(backend, "gated", limits=Limits(max_audio_s=60))
    five_minutes, unlabelled = flac_silence(300), flac_silence(300, hide_length=True)
    assert len(five_minutes) < 20_000 and sf.info(io.BytesIO(five_minutes)).duration == 300
    uploads = [five_minutes] * 4 + [unlabelled] * 3 + [flac_silence(50)]
    with (
        LoopbackServer(app) as server,
        httpx.Client(base_url=f"{server.url}/v1", timeout=120) as http,
        ThreadPoolExecutor(len(uploads)) as pool,
    ):
        send = lambda data: http.post(  # noqa: E731
            "/audio/transcriptions", data={"model": "gated"}, files={"file": ("silence.flac", data)}
        )
        responses = list(pool.map(send, uploads))
    limit = "'silence.flac' is longer than this server's limit of 60 s of audio"
    for response in responses[:4]:
        assert response.status_code == 400
        assert response.json()["error"] == {
            "message": f"the uploaded file {limit} (its header says 300.0 s)",
            "type": "invalid_request_error",
        }
    for response in responses[4:7]:  # no length in the header: decoding stops a second past the limit
        assert response.status_code == 400
        assert response.json()["error"]["message"] == f"the uploaded file {limit} (decoding stopped at 61.0 s)"
    assert responses[7].json() == {"text": "done"}
    assert backend.calls == 1


class Broken(Backend):
    """A backend with a bug: its exception escapes transcribe."""

    name: ClassVar[str] = "broken"
    capabilities: ClassVar[Capabilities] = Capabilities(detects_language=True)

    def transcribe(self, batch: Sequence[AudioRequest]) -> list[Transcript]:
        raise MemoryError("cannot allocate 3 GiB")

    def fingerprint(self) -> dict[str, str]:
        return {"engine": self.name}


def test_a_server_bug_still_answers_in_openai_error_shape():
    """Issue 29 item 3: some requests got a plain-text 500 ("Internal Server Error")."""
    with (
        LoopbackServer(create_app(Broken(Broken.Options()), "broken")) as server,
        httpx.Client(base_url=f"{server.url}/v1") as http,
    ):
        response = post(http, wav(0.1, 16_000), model="broken")
    assert response.status_code == 500
    assert response.json() == {"error": {"message": "internal server error: MemoryError", "type": "server_error"}}


class GuardedServer:
    """The server ``asrfair serve`` runs (uvicorn under :func:`uvicorn_config`), in a thread."""

    def __init__(self, app, limits: Limits) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn_config(app, limits))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> GuardedServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert time.monotonic() < deadline and self._thread.is_alive(), "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self.sock.close()

    def connect(self, first: bytes = b"") -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        sock.sendall(first)
        return sock


def answer_of(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of the one answer on ``sock``, read until the server closes it."""
    data = b""
    with sock:
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


HALF_HEADERS = b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: localhost\r\nContent-Ty"
HALF_BODY = (
    b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n"
    b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
    b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF'
)


def test_half_sent_requests_get_408_while_normal_clients_are_served(caplog):
    """Issue 29 item 4: 1,100 half-sent requests locked clients out and logged ClientDisconnect tracebacks."""
    caplog.set_level(logging.INFO)
    limits = Limits(header_timeout=3, body_timeout=3)
    with GuardedServer(create_app(Registry.default().create("stub", {}), "stub", limits=limits), limits) as server:
        slow = [server.connect(HALF_HEADERS) for _ in range(40)] + [server.connect(HALF_BODY) for _ in range(40)]
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}/v1", timeout=60) as http:
            assert post(http, wav(0.1, 16_000), model="stub").json() == {"text": ""}
        outcomes = [answer_of(sock) for sock in slow]
        # Keep-alive: after a full request, half of the next one's headers gets the same deadline.
        with server.connect(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\nGET /v1/mo") as kept:
            kept_answers = b""
            while chunk := kept.recv(65536):
                kept_answers += chunk
        server.connect(HALF_BODY).close()  # a client that leaves mid-upload
        deadline = time.monotonic() + 30
        while not any("went away" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the departed client was never noticed"
            time.sleep(0.05)
    assert outcomes[:40] == [
        (408, {"error": {"message": "the request headers did not arrive within 3 s", "type": "invalid_request_error"}})
    ] * 40
    slow_body = "the request body did not arrive within this server's limit of 3 s"
    assert outcomes[40:] == [(408, {"error": {"message": slow_body, "type": "invalid_request_error"}})] * 40
    assert kept_answers.startswith(b"HTTP/1.1 200 ") and kept_answers.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 408 Request Timeout" in kept_answers and b"headers did not arrive within 3 s" in kept_answers
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]  # no tracebacks


def test_connections_over_the_cap_get_503_at_once_and_the_server_recovers():
    limits = Limits(max_connections=20, header_timeout=600)  # nothing times out during the test
    with GuardedServer(create_app(Registry.default().create("stub", {}), "stub", limits=limits), limits) as server:
        held = [server.connect() for _ in range(20)]  # idle connections: they hold their places
        refused = [answer_of(server.connect()) for _ in range(10)]
        message = "the server has its limit of 20 connections open; retry"
        assert refused == [(503, {"error": {"message": message, "type": "server_error"}})] * 10
        for sock in held:
            sock.close()
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}/v1", timeout=60) as http:
            for _ in range(200):  # the server notices the closed connections on its next loop turns
                try:
                    response = post(http, wav(0.1, 16_000), model="stub")
                except httpx.TransportError:  # refused before the request was read: a reset
                    continue
                if response.status_code == 200:
                    break
                time.sleep(0.05)
            assert response.json() == {"text": ""}


LANGUAGE_ECHO = '''
from harness.backends.base import Backend, Capabilities, Transcript


class LanguageEcho(Backend):
    """Says what it was asked: the language it was given and how much audio."""

    name = "language-echo"
    capabilities = Capabilities(detects_language=True)

    def transcribe(self, batch):
        heard = [f"language {r.utterance.language!r} samples {r.samples.size}" for r in batch]
        return [Transcript.ok(r.utterance.id, text) for r, text in zip(batch, heard)]

    def fingerprint(self):
        return {"engine": self.name}
'''


def start_serve(arguments: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """The real ``asrfair serve`` on a free port; returns the process and its /v1 URL once it answers.
    ``env`` replaces this process's environment. serve takes no port 0, and a port found free can be
    taken (by a test in another xdist worker) before serve binds it: serve then exits 2 "cannot
    listen there" at once, and another free port is tried."""
    for _ in range(5):
        port = free_port()
        server = start("serve", *arguments, "--port", str(port), env=env, inherit=env is None, stdout=None)
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{url}/models", timeout=1).raise_for_status()
                return server, url
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    stderr = server.communicate()[1]
                    if server.returncode == 2 and "cannot listen there" in stderr:
                        break
                    pytest.fail(f"serve did not start: {stderr}")
                time.sleep(0.2)
    pytest.fail(f"serve found no free port in 5 tries: {stderr}")


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory):
    """``asrfair serve`` with a third-party backend installed through its entry point."""
    folder = tmp_path_factory.mktemp("echo")
    plugin = install_backend_plugin(folder / "plugin", "language_echo", LANGUAGE_ECHO, "language-echo", "LanguageEcho")
    config = folder / "serve.yaml"
    config.write_text(yaml.safe_dump({"backend": {"name": "language-echo"}}))
    path = os.pathsep.join(filter(None, [str(plugin), os.environ.get("PYTHONPATH")]))
    server, url = start_serve(["--backend", str(config)], {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"})
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def echo_post(url: str, **form: str) -> httpx.Response:
    files = {"file": ("a.wav", wav(0.5, 16_000))}
    return httpx.post(f"{url}/audio/transcriptions", data={"model": "language-echo", **form}, files=files, timeout=60)


def test_no_language_reaches_the_backend_as_none_so_it_detects(echo_server):
    """Issue 24 item 4: with no `language` from the client the backend was told `en`."""
    assert echo_post(echo_server).json() == {"text": "language None samples 8000"}
    assert echo_post(echo_server, language="").json() == {"text": "language None samples 8000"}
    assert echo_post(echo_server, language="cy").json() == {"text": "language 'cy' samples 8000"}


class FixedLanguage(SampleCounter):
    """A backend that needs to be told the language (most cloud APIs without their detection option)."""

    capabilities: ClassVar[Capabilities] = Capabilities()


def test_a_backend_that_cannot_detect_the_language_asks_for_one():
    fixed = FixedLanguage(FixedLanguage.Options())
    with LoopbackServer(create_app(fixed, "counter")) as server, httpx.Client(base_url=f"{server.url}/v1") as http:
        refused = post(http, wav(0.1, 16_000))
        assert refused.status_code == 400
        assert refused.json()["error"] == {
            "message": "backend 'sample-counter' cannot detect the language; send 'language' (e.g. en)",
            "type": "invalid_request_error",
        }
        assert post(http, wav(0.1, 16_000), language="en").json() == {"text": "1600 samples en"}


def sse_events(response: httpx.Response) -> list[dict]:
    """The ``data:`` payloads of a server-sent event stream (https://html.spec.whatwg.org/#server-sent-events)."""
    return [json.loads(line[len("data: ") :]) for line in response.text.splitlines() if line.startswith("data: ")]


def test_stream_true_answers_openai_transcript_events(echo_server):
    """Issue 24 item 8: `stream=true` was ignored; OpenAI's client then saw zero events."""
    response = echo_post(echo_server, stream="true", language="en")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert sse_events(response) == [
        {"type": "transcript.text.delta", "delta": "language 'en' samples 8000"},
        {"type": "transcript.text.done", "text": "language 'en' samples 8000"},
    ]
    assert echo_post(echo_server, stream="false").json() == {"text": "language None samples 8000"}
    for form, says in (
        ({"stream": "yes"}, "stream 'yes' is not a boolean"),
        ({"stream": "true", "response_format": "verbose_json"}, "use response_format json or text"),
    ):
        refused = echo_post(echo_server, **form)
        assert refused.status_code == 400 and says in refused.json()["error"]["message"]


def test_verbose_json_has_openai_segments(echo_server):
    verbose = echo_post(echo_server, response_format="verbose_json", language="en").json()
    text = "language 'en' samples 8000"
    assert verbose["text"] == text and verbose["duration"] == 0.5 and verbose["language"] == "en"
    [segment] = verbose["segments"]
    assert segment["id"] == 0 and (segment["start"], segment["end"]) == (0.0, 0.5) and segment["text"] == text
    assert segment["tokens"] == [] and segment["compression_ratio"] > 0
    assert set(segment) == {
        "id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio",
        "no_speech_prob",
    }  # fmt: skip


def test_the_official_openai_client_streams_and_reads_segments(echo_server):
    openai = pytest.importorskip("openai")  # the dev extra installs it
    client = openai.OpenAI(base_url=echo_server, api_key="unused", max_retries=0)
    audio = ("a.wav", wav(0.5, 16_000))
    events = list(client.audio.transcriptions.create(model="language-echo", file=audio, stream=True))
    assert [e.type for e in events] == ["transcript.text.delta", "transcript.text.done"]
    assert events[-1].text == "language None samples 8000"
    verbose = client.audio.transcriptions.create(
        model="language-echo", file=audio, response_format="verbose_json", language="fr"
    )
    assert verbose.text == "language 'fr' samples 8000" and verbose.segments[0].end == 0.5
    with pytest.raises(openai.NotFoundError, match="this server serves 'language-echo'"):
        client.audio.transcriptions.create(model="whisper-1", file=audio)
