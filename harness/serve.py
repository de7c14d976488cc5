"""``asrfair serve``: any configured backend behind the OpenAI transcription protocol.

``POST /v1/audio/transcriptions`` takes the multipart form the OpenAI API takes (``file``,
``model``, optional ``language``, ``prompt``, ``temperature``, ``response_format``, ``stream``)
and answers ``{"text": ...}``, plain text, ``verbose_json`` with ``segments``, or with
``stream=true`` server-sent ``transcript.text.delta``/``transcript.text.done`` events; errors use
OpenAI's ``{"error": {"message", "type"}}`` shape, every one of them. The uploaded file is decoded
like a manifest's audio (any format the harness reads), resampled to the backend's rate and
transcribed. With no ``language`` the backend is told none and detects it, as OpenAI does; a
backend that cannot detect one answers 400 asking for it. Requests reach the backend one at a
time: local engines are not safe to call concurrently, and they keep their own threads busy.
``prompt`` and ``temperature`` are accepted for compatibility but the backend's configured
decoding options apply.

Limits (:class:`Limits`), so a stray or hostile client cannot exhaust the machine: connections
over ``max_connections`` get a 503 at once and are closed; request headers must arrive within
``header_timeout`` and the body within ``body_timeout`` (408); the body is capped while it is read
(413); an upload that is not audio is refused before the backend sees it (400), and so is one
whose header says it is longer than ``max_audio_s``, before anything is decoded. Decoding stops
at ``max_audio_s`` too (a header may lie or say nothing) and happens in the request's turn, so
one clip at most is held decoded. Each request gets ``request_timeout`` seconds from the end of
its upload to its answer, waiting for its turn included (504). A transcription that overruns
keeps the backend until it finishes (a running engine call cannot be interrupted), so the next
request never runs beside it; a request whose time runs out while it waits is dropped without
reaching the backend.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from harness import redaction
from harness.backends.base import AudioRequest, Backend, Registry
from harness.config import BackendSpec
from harness.data.audio import AudioError, load_audio
from harness.data.manifest import Utterance
from harness.errors import BackendUnavailable, InputError, format_validation_error
from harness.yamlfile import read_yaml

log = logging.getLogger(__name__)
RESPONSE_FORMATS = ("json", "text", "verbose_json")
# The body is the file plus the other form fields and multipart framing; this slack lets a file of
# exactly the limit through.
_FORM_ALLOWANCE = 64 * 1024
_HEADER_BYTES = 16 * 1024  # h11's incomplete-event cap: request line plus headers
_TRUE, _FALSE = ("true", "1"), ("false", "0", "")


@dataclass(frozen=True)
class Limits:
    """What one client may cost the server; each is a ``serve`` option (docs/backends.md)."""

    max_upload_mb: float = 25.0  # OpenAI's own limit for a transcription upload
    max_audio_s: float = 1800.0  # decoded duration; 30 min at 16 kHz mono is 115 MB of float32
    request_timeout: float = 120.0
    header_timeout: float = 10.0
    body_timeout: float = 60.0  # the whole upload: 25 MB at 3.5 Mbit/s fits
    max_connections: int = 256  # with spooled uploads, well inside a 1,024 file-descriptor limit


def load_backend(path: Path, registry: Registry | None = None) -> Backend:
    """The backend of a YAML file with a ``backend:`` section (a run config is one)."""
    return create_backend(path, read_backend_spec(path), registry)


def read_backend_spec(path: Path) -> BackendSpec:
    """The ``backend:`` section of a YAML file, checked; nothing is loaded yet."""
    data = read_yaml(path, "backend config")
    if not isinstance(data, dict) or not isinstance(data.get("backend"), dict):
        raise InputError(f"{path}: needs a 'backend:' mapping, e.g. backend: {{name: faster-whisper, model: tiny.en}}")
    try:
        return BackendSpec.model_validate(data["backend"])
    except ValidationError as exc:
        raise InputError(f"{path}: {format_validation_error(exc, 'backend', BackendSpec)}") from None


def create_backend(path: Path, spec: BackendSpec, registry: Registry | None = None) -> Backend:
    """The backend ``spec`` (read from ``path``) names, its engine loaded."""
    try:
        return (registry or Registry.default()).create(spec.name, spec.options)
    except BackendUnavailable as exc:
        raise BackendUnavailable(f"{path}: 'backend': {exc}") from None


def create_app(backend: Backend, model_name: str, api_key: str | None = None, limits: Limits = Limits()) -> Starlette:
    """The ASGI app; ``api_key`` (if given) must come as ``Authorization: Bearer <key>``."""
    one_at_a_time = asyncio.Lock()
    overrunning: set[asyncio.Task] = set()  # referenced so they are not collected mid-call
    rate = backend.capabilities.sample_rate

    async def answer(folder: Path, name: str, language: str | None, has_turn: asyncio.Event) -> _Outcome:
        try:
            path = folder / f"upload{Path(name).suffix}"  # the client's name may be '..', '' or too long
            refused = await run_in_threadpool(_check_upload, path, name, limits.max_audio_s)
            if refused is not None:
                return refused
            async with one_at_a_time:  # decoded here, so one decoded clip at most is in memory
                has_turn.set()
                decoded = await run_in_threadpool(_decode, path, name, language, rate, limits.max_audio_s)
                if isinstance(decoded, _Failure):
                    return decoded
                return await run_in_threadpool(_recognise, backend, *decoded)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def transcriptions(request: Request) -> Response:
        if api_key is not None and not _authorised(request, api_key):
            return _error("Incorrect API key provided", "invalid_request_error", 401)
        form = await request.form()  # the body's size and deadline are enforced by _Guard
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _error("'file' is required: the audio file to transcribe", "invalid_request_error", 400)
        model = form.get("model")
        if model != model_name:
            return _error(
                f"model '{model}' is not served here; this server serves '{model_name}'", "model_not_found", 404
            )
        response_format = str(form.get("response_format") or "json")
        if response_format not in RESPONSE_FORMATS:
            return _error(
                f"response_format '{response_format}' is not supported; use {', '.join(RESPONSE_FORMATS)}",
                "invalid_request_error",
                400,
            )
        stream = str(form.get("stream") or "").lower()
        if stream not in _TRUE + _FALSE:
            return _error(f"stream '{stream}' is not a boolean; use true or false", "invalid_request_error", 400)
        if stream in _TRUE and response_format == "verbose_json":
            return _error(
                "stream=true sends transcript.text events; use response_format json or text with it",
                "invalid_request_error",
                400,
            )
        language = str(form.get("language") or "").strip() or None  # none: the backend detects it
        if language is None and not backend.capabilities.detects_language:
            return _error(
                f"backend '{backend.name}' cannot detect the language; send 'language' (e.g. en)",
                "invalid_request_error",
                400,
            )
        name = upload.filename or "audio"
        folder = Path(tempfile.mkdtemp(prefix="asrfair-serve-"))
        try:  # off the form's spooled file, which closes with the request, onto disk the task owns
            await run_in_threadpool(_save, upload, folder / f"upload{Path(name).suffix}")
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            log.warning("cannot store an upload: %s", exc)
            return _error(f"the server cannot store the upload: {exc.strerror}", "server_error", 500)
        has_turn = asyncio.Event()
        task = asyncio.ensure_future(answer(folder, name, language, has_turn))
        try:
            outcome = await asyncio.wait_for(asyncio.shield(task), limits.request_timeout)
        except TimeoutError:
            if has_turn.is_set():  # the engine call runs on; it keeps the turn until it returns
                log.warning(
                    "a transcription ran past the %g s request timeout; the next waits for it", limits.request_timeout
                )
                overrunning.add(task)
                task.add_done_callback(overrunning.discard)
            else:
                task.cancel()
            return _error(
                f"no answer within the server's request timeout ({limits.request_timeout:g} s)", "server_error", 504
            )
        if isinstance(outcome, _Failure):
            return _error(outcome.message, outcome.kind, outcome.status)
        text, duration = outcome
        if stream in _TRUE:
            return StreamingResponse(_events(text), media_type="text/event-stream")
        if response_format == "text":
            return PlainTextResponse(text)
        if response_format == "verbose_json":
            return JSONResponse(_verbose(text, duration, language))
        return JSONResponse({"text": text})

    async def models(request: Request) -> JSONResponse:
        if api_key is not None and not _authorised(request, api_key):  # the fingerprint is not public either
            return _error("Incorrect API key provided", "invalid_request_error", 401)
        entry = {"id": model_name, "object": "model", "owned_by": "asrfair", "fingerprint": backend.fingerprint_id()}
        return JSONResponse({"object": "list", "data": [entry]})

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        kind = "server_error" if exc.status_code >= 500 else "invalid_request_error"
        response = _error(str(exc.detail), kind, exc.status_code)
        response.headers.update(exc.headers or {})  # e.g. a 405's Allow
        return response

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # A bug or MemoryError: the client still gets OpenAI's shape (Starlette logs the traceback).
        return _error(f"internal server error: {type(exc).__name__}", "server_error", 500)

    return Starlette(
        routes=[
            Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ],
        middleware=[Middleware(_Guard, limits=limits)],
        # malformed forms, 404, 405, 408, 413 and bugs, all in OpenAI's shape
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )


class _Guard:
    """The body's deadline and size, enforced while it arrives; a client that leaves is one log line.

    A body over the cap is refused as soon as it passes it (a declared ``Content-Length`` before
    anything is read), so an oversized upload is never buffered; one still arriving at the
    deadline gets a 408, so a client trickling its upload holds a connection for a bounded time.
    """

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app, self.limits = app, limits
        self.max_bytes = round(limits.max_upload_mb * 1024 * 1024) + _FORM_ALLOWANCE
        self.too_large = f"the upload is larger than this server's limit of {limits.max_upload_mb:g} MB"
        self.too_slow = f"the request body did not arrive within this server's limit of {limits.body_timeout:g} s"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await _error(self.too_large, "invalid_request_error", 413, close=True)(scope, receive, send)
        deadline = asyncio.get_running_loop().time() + self.limits.body_timeout
        received, complete = 0, False

        async def guarded() -> Message:  # errors raised here surface in the handler's form read
            nonlocal received, complete
            if complete:  # later reads wait for a disconnect: no deadline
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, self.too_slow, headers={"Connection": "close"}) from None
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.too_large, headers={"Connection": "close"})
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        try:
            await self.app(scope, guarded, send)
        except ClientDisconnect:  # not the server's fault and not worth a traceback
            log.info("client %s went away before its request was read", _peer(scope))


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


class _Failure:
    def __init__(self, message: str, kind: str, status: int) -> None:
        self.message, self.kind, self.status = message, kind, status


_Outcome = tuple[str, float] | _Failure


def _save(upload: UploadFile, path: Path) -> None:
    upload.file.seek(0)
    with path.open("wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)


def _check_upload(path: Path, filename: str, max_audio_s: float) -> _Failure | None:
    """A 400 for an upload that is empty, text, or longer than ``max_audio_s`` by its header."""
    name = Path(filename).name
    with path.open("rb") as handle:
        head = handle.read(4096)
    if not head:
        return _Failure(f"the uploaded file '{name}' is empty, not audio", "invalid_request_error", 400)
    if _is_text(head):  # JSON, CSV, a transcript: say so rather than "cannot decode"
        return _Failure(f"the uploaded file '{name}' is text, not audio", "invalid_request_error", 400)
    seconds = _header_duration(path)
    if seconds is not None and seconds > max_audio_s:
        return _too_long(name, f"its header says {seconds:.1f} s", max_audio_s)
    return None


def _too_long(name: str, how: str, max_audio_s: float) -> _Failure:
    message = f"the uploaded file '{name}' is longer than this server's limit of {max_audio_s:g} s of audio ({how})"
    return _Failure(message, "invalid_request_error", 400)


def _header_duration(path: Path) -> float | None:
    """Seconds of audio as the file's header (libsndfile) or container (FFmpeg) states them, without
    decoding; None when neither says (a FLAC may leave its length out; a stream has none)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return _container_duration(path)
    if info.samplerate <= 0 or not 0 < info.frames < 2**62:  # 0 or SF_COUNT_MAX: "unknown"
        return None
    return info.frames / info.samplerate


def _container_duration(path: Path) -> float | None:
    import av  # deferred: only formats libsndfile does not read get here

    try:
        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / av.time_base
            for stream in container.streams.audio:
                if stream.duration and stream.time_base:
                    return float(stream.duration * stream.time_base)
    except (av.FFmpegError, OSError, ValueError):
        pass  # not a container FFmpeg knows either: decoding says what it is
    return None


def _decode(
    path: Path, filename: str, language: str | None, rate: int, max_audio_s: float
) -> tuple[Utterance, np.ndarray] | _Failure:
    """The upload as samples at ``rate``, decoded no further than just past ``max_audio_s``."""
    name = Path(filename).name
    # The decoder stops one second past the limit, whatever the header said: reaching that far
    # proves the clip too long with the memory bounded.
    utt = Utterance(id=uuid.uuid4().hex, audio=path, text="", language=language, duration=max_audio_s + 1.0)
    try:
        samples = load_audio(utt, rate)
    except (AudioError, OSError, ValueError) as exc:
        log.debug("upload %s not decoded: %s", name, exc)
        message = f"the uploaded file '{name}' is not audio in any format this server decodes"
        return _Failure(message, "invalid_request_error", 400)
    if samples.size == 0:
        return _Failure("the uploaded file holds no audio", "invalid_request_error", 400)
    if samples.size > max_audio_s * rate:
        return _too_long(name, f"decoding stopped at {samples.size / rate:.1f} s", max_audio_s)
    return utt, samples


def _is_text(head: bytes) -> bool:
    """Every audio container starts with binary header fields; text has no control bytes."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def _recognise(backend: Backend, utt: Utterance, samples: np.ndarray) -> _Outcome:
    rate = backend.capabilities.sample_rate
    needs_audio = backend.capabilities.needs_audio
    [transcript] = backend.transcribe([AudioRequest(utt, samples if needs_audio else None, rate)])
    if transcript.status != "ok" or transcript.text is None:  # a client must never see the backend's key
        return _Failure(redaction.redact(transcript.error or "transcription failed"), "server_error", 500)
    return transcript.text, samples.size / rate


def _verbose(text: str, duration: float, language: str | None) -> dict[str, Any]:
    """OpenAI's ``verbose_json``. Backends return text without timestamps or token scores, so one
    segment spans the clip, with no tokens and 0.0 for the scores nobody computed."""
    encoded = text.encode()
    segment = {
        "id": 0,
        "seek": 0,
        "start": 0.0,
        "end": duration,
        "text": text,
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": 0.0,
        "compression_ratio": len(encoded) / len(zlib.compress(encoded)) if encoded else 0.0,  # as Whisper computes it
        "no_speech_prob": 0.0,
    }
    return {
        "task": "transcribe",
        "language": language or "unknown",  # the backend detected it but does not say what it found
        "duration": duration,
        "text": text,
        "segments": [segment] if text else [],
    }


async def _events(text: str) -> AsyncIterator[bytes]:
    """OpenAI's transcription stream: text deltas, then the whole text (the backend answers at
    once, so the text is one delta)."""
    for event in ({"type": "transcript.text.delta", "delta": text}, {"type": "transcript.text.done", "text": text}):
        yield f"data: {json.dumps(event)}\n\n".encode()


def _authorised(request: Request, api_key: str) -> bool:
    given = request.headers.get("authorization", "")
    return secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode())


def _error(message: str, kind: str, status: int, *, close: bool = False) -> JSONResponse:
    headers = {"Connection": "close"} if close else None
    return JSONResponse(_error_body(message, kind), status_code=status, headers=headers)


def _error_body(message: str, kind: str) -> dict[str, dict[str, str]]:
    return {"error": {"message": message, "type": kind}}


@dataclass
class _Refusals:
    """Connections refused since the last log line, so a flood is a line a minute, not a line each."""

    count: int = 0
    logged_at: float = field(default=-1e9)


class _GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a deadline for each request's headers.

    uvicorn times out only idle keep-alive connections: a client that sends half a request line
    and stops holds its socket for ever, and enough of them exhaust the process's file
    descriptors. Here a connection over ``max_connections`` is answered 503 and closed before
    anything is read, and one whose request headers have not all arrived ``header_timeout`` s
    after it opened (or after its previous answer) is answered 408 and closed. Both answers, and
    uvicorn's 400 for a malformed request, use OpenAI's error shape.
    """

    def __init__(self, *args: Any, limits: Limits, refusals: _Refusals, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits, self._refusals = limits, refusals
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            self._note_refusal()
            self._reject(503, f"the server has its limit of {self._limits.max_connections} connections open; retry")
            return
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # keep-alive: the next request's headers get a deadline too
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._reject(400, f"malformed HTTP request: {msg}")

    def _arm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self._limits.header_timeout, self._headers_overdue, self.cycle)

    def _headers_overdue(self, cycle_then: object) -> None:
        if self.transport.is_closing() or self.cycle is not cycle_then:
            return  # a new request's headers arrived in time; its body has the app's deadline
        log.info("client %s sent no complete request headers within %g s", self.client, self._limits.header_timeout)
        self._reject(408, f"the request headers did not arrive within {self._limits.header_timeout:g} s")

    def _note_refusal(self) -> None:
        refusals = self._refusals
        refusals.count += 1
        if self.loop.time() - refusals.logged_at >= 60:
            log.warning(
                "refused %d connection(s): %d open is the --max-connections limit",
                refusals.count,
                self._limits.max_connections,
            )
            refusals.count, refusals.logged_at = 0, self.loop.time()

    def _reject(self, status: int, message: str) -> None:
        """Answer ``status`` and close, whatever h11's state: the request may be unread or half-read."""
        body = json.dumps(_error_body(message, "server_error" if status >= 500 else "invalid_request_error")).encode()
        reason = {400: b"Bad Request", 408: b"Request Timeout", 503: b"Service Unavailable"}[status]
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        self.transport.write(head % (status, reason, len(body)) + body)
        self.transport.close()


def uvicorn_config(app: ASGIApp, limits: Limits) -> Any:
    """uvicorn's settings for ``app`` under ``limits``: the guarded protocol and the header size cap;
    an idle keep-alive connection is closed after uvicorn's 5 s."""
    import uvicorn

    protocol = functools.partial(_GuardedProtocol, limits=limits, refusals=_Refusals())
    return uvicorn.Config(
        app,
        http=protocol,  # type: ignore[arg-type]  # uvicorn calls it like the class
        h11_max_incomplete_event_size=_HEADER_BYTES,
        lifespan="off",
        log_level="warning",
        log_config=None,  # uvicorn's loggers propagate to ours, whose filter redacts secrets
    )


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port``, or a one-line InputError saying why it cannot be."""
    if not 1 <= port <= 65535:
        raise InputError(f"--port {port}: a TCP port is 1-65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"--host {host}: not an address or a resolvable name ({exc})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart over TIME_WAIT
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise InputError(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror}); pick a free port or an address "
            "of this machine"
        ) from None
    return sock


def server_key(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise InputError(f"--api-key-env {env_name}: the variable is not set; export it or drop the option")
    return value


def serve(
    backend: Backend, sock: socket.socket, *, model_name: str, api_key: str | None, limits: Limits = Limits()
) -> None:
    """Serve until interrupted on ``sock`` (from :func:`bind`); closes both the socket and the backend."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    log.warning("serving %s as model '%s' on http://%s:%d/v1", backend.name, model_name, host, port)
    app = create_app(backend, model_name, api_key, limits)
    try:
        uvicorn.Server(uvicorn_config(app, limits)).run(sockets=[sock])
    finally:
        sock.close()
        backend.close()
