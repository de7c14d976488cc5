"""``asrfair serve``: any configured backend behind the OpenAI transcription protocol.

``POST /v1/audio/transcriptions`` takes the multipart form the OpenAI API takes (``file``,
``model``, optional ``language``, ``prompt``, ``temperature``, ``response_format``) and answers
``{"text": ...}``; errors use OpenAI's ``{"error": {"message", "type"}}`` shape. The uploaded
file is decoded like a manifest's audio (any format the harness reads), resampled to the
backend's rate and transcribed. Requests reach the backend one at a time: local engines are not
safe to call concurrently, and they keep their own threads busy. ``prompt`` and ``temperature``
are accepted for compatibility but the backend's configured decoding options apply.

Limits, so a stray client cannot exhaust the machine: the request body is capped while it is
read (a declared ``Content-Length`` over the cap is refused before reading, a streamed body as
soon as it passes it: 413), an upload that is not audio is refused before the backend sees it
(400), and each request gets ``request_timeout`` seconds from the end of its upload to its
answer, waiting for its turn included (504). A transcription that overruns keeps the backend
until it finishes (a running engine call cannot be interrupted), so the next request never runs
beside it; a request whose time runs out while it waits is dropped without reaching the backend.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import tempfile
import uuid
from pathlib import Path

import numpy as np
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from harness import redaction
from harness.audio import AudioError, load_audio
from harness.backends.base import AudioRequest, Backend, Registry
from harness.config import BackendSpec
from harness.errors import BackendUnavailable, InputError, format_validation_error
from harness.manifest import Utterance
from harness.yamlfile import read_yaml

log = logging.getLogger(__name__)
RESPONSE_FORMATS = ("json", "text", "verbose_json")
MAX_UPLOAD_MB = 25.0  # OpenAI's own limit for a transcription upload
REQUEST_TIMEOUT = 120.0
# The body is the file plus the other form fields and multipart framing; this slack lets a file of
# exactly the limit through.
_FORM_ALLOWANCE = 64 * 1024


def load_backend(path: Path, registry: Registry | None = None) -> Backend:
    """The backend of a YAML file with a ``backend:`` section (a run config is one)."""
    data = read_yaml(path, "backend config")
    if not isinstance(data, dict) or not isinstance(data.get("backend"), dict):
        raise InputError(f"{path}: needs a 'backend:' mapping, e.g. backend: {{name: faster-whisper, model: tiny.en}}")
    try:
        spec = BackendSpec.model_validate(data["backend"])
    except ValidationError as exc:
        raise InputError(f"{path}: {format_validation_error(exc, 'backend')}") from None
    try:
        return (registry or Registry.default()).create(spec.name, spec.options)
    except BackendUnavailable as exc:
        raise BackendUnavailable(f"{path}: 'backend': {exc}") from None


def create_app(
    backend: Backend,
    model_name: str,
    api_key: str | None = None,
    *,
    max_upload_mb: float = MAX_UPLOAD_MB,
    request_timeout: float = REQUEST_TIMEOUT,
) -> Starlette:
    """The ASGI app; ``api_key`` (if given) must come as ``Authorization: Bearer <key>``."""
    one_at_a_time = asyncio.Lock()
    overrunning: set[asyncio.Task] = set()  # referenced so they are not collected mid-call

    async def answer(data: bytes, filename: str, language: str, has_turn: asyncio.Event) -> _Outcome:
        decoded = await run_in_threadpool(_decode, data, filename, language, backend.capabilities.sample_rate)
        if isinstance(decoded, _Failure):
            return decoded
        async with one_at_a_time:
            has_turn.set()
            return await run_in_threadpool(_recognise, backend, *decoded)

    async def transcriptions(request: Request) -> Response:
        if api_key is not None and not _authorised(request, api_key):
            return _error("Incorrect API key provided", "invalid_request_error", 401)
        form = await request.form()
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
        language = str(form.get("language") or "en")
        data = await upload.read()
        has_turn = asyncio.Event()
        task = asyncio.ensure_future(answer(data, upload.filename or "audio", language, has_turn))
        try:
            outcome = await asyncio.wait_for(asyncio.shield(task), request_timeout)
        except TimeoutError:
            if has_turn.is_set():  # the engine call runs on; it keeps the turn until it returns
                log.warning("a transcription ran past the %g s request timeout; the next waits for it", request_timeout)
                overrunning.add(task)
                task.add_done_callback(overrunning.discard)
            else:
                task.cancel()
            return _error(f"no answer within the server's request timeout ({request_timeout:g} s)", "server_error", 504)
        if isinstance(outcome, _Failure):
            return _error(outcome.message, outcome.kind, outcome.status)
        text, duration = outcome
        if response_format == "text":
            return PlainTextResponse(text)
        if response_format == "verbose_json":
            return JSONResponse({"task": "transcribe", "language": language, "duration": duration, "text": text})
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

    max_body = round(max_upload_mb * 1024 * 1024) + _FORM_ALLOWANCE
    return Starlette(
        routes=[
            Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ],
        middleware=[Middleware(_BodyLimit, max_bytes=max_body, max_upload_mb=max_upload_mb)],
        exception_handlers={HTTPException: http_error},  # malformed forms, 404, 405, 413 in OpenAI's shape
    )


class _BodyLimit:
    """Refuses a body over ``max_bytes`` while it arrives, so an oversized upload is never buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_mb: float) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.too_large = f"the upload is larger than this server's limit of {max_upload_mb:g} MB"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await _error(self.too_large, "invalid_request_error", 413)(scope, receive, send)
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:  # raised inside the handler's form read; rendered as a 413
                raise HTTPException(413, self.too_large)
            return message

        await self.app(scope, counted, send)


class _Failure:
    def __init__(self, message: str, kind: str, status: int) -> None:
        self.message, self.kind, self.status = message, kind, status


_Outcome = tuple[str, float] | _Failure


def _decode(data: bytes, filename: str, language: str, rate: int) -> tuple[Utterance, np.ndarray] | _Failure:
    """The upload as samples at ``rate``, or a 400 saying it is not audio."""
    name = Path(filename).name
    if not data:
        return _Failure(f"the uploaded file '{name}' is empty, not audio", "invalid_request_error", 400)
    if _is_text(data[:4096]):  # JSON, CSV, a transcript: say so rather than "cannot decode"
        return _Failure(f"the uploaded file '{name}' is text, not audio", "invalid_request_error", 400)
    with tempfile.TemporaryDirectory(prefix="asrfair-serve-") as folder:
        path = Path(folder) / f"upload{Path(name).suffix}"  # the client's name may be '..', '' or too long
        utt = Utterance(id=uuid.uuid4().hex, audio=path, text="", language=language)
        try:
            path.write_bytes(data)
            samples = load_audio(utt, rate)
        except (AudioError, OSError, ValueError) as exc:
            log.debug("upload %s not decoded: %s", name, exc)
            message = f"the uploaded file '{name}' is not audio in any format this server decodes"
            return _Failure(message, "invalid_request_error", 400)
    if samples.size == 0:
        return _Failure("the uploaded file holds no audio", "invalid_request_error", 400)
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


def _authorised(request: Request, api_key: str) -> bool:
    given = request.headers.get("authorization", "")
    return secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode())


def _error(message: str, kind: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


def server_key(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise InputError(f"--api-key-env {env_name}: the variable is not set; export it or drop the option")
    return value


def serve(
    backend: Backend,
    *,
    host: str,
    port: int,
    model_name: str,
    api_key: str | None,
    max_upload_mb: float = MAX_UPLOAD_MB,
    request_timeout: float = REQUEST_TIMEOUT,
) -> None:
    import uvicorn

    log.warning("serving %s as model '%s' on http://%s:%d/v1", backend.name, model_name, host, port)
    app = create_app(backend, model_name, api_key, max_upload_mb=max_upload_mb, request_timeout=request_timeout)
    try:
        # log_config=None: uvicorn's loggers propagate to ours, whose filter redacts secrets
        uvicorn.run(app, host=host, port=port, log_level="warning", log_config=None)
    finally:
        backend.close()
