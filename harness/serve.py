"""``asrfair serve``: any configured backend behind the OpenAI transcription protocol.

``POST /v1/audio/transcriptions`` takes the multipart form the OpenAI API takes (``file``,
``model``, optional ``language``, ``prompt``, ``temperature``, ``response_format``) and answers
``{"text": ...}``; errors use OpenAI's ``{"error": {"message", "type"}}`` shape. The uploaded
file is decoded like a manifest's audio (any format the harness reads), resampled to the
backend's rate and transcribed. Requests reach the backend one at a time: local engines are not
safe to call concurrently, and they keep their own threads busy. ``prompt`` and ``temperature``
are accepted for compatibility but the backend's configured decoding options apply.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import tempfile
import uuid
from pathlib import Path

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from harness.audio import AudioError, load_audio
from harness.backends.base import AudioRequest, Backend, Registry
from harness.config import BackendSpec
from harness.errors import InputError, format_validation_error
from harness.manifest import Utterance
from harness.yamlfile import read_yaml

log = logging.getLogger(__name__)
RESPONSE_FORMATS = ("json", "text", "verbose_json")


def load_backend(path: Path, registry: Registry | None = None) -> Backend:
    """The backend of a YAML file with a ``backend:`` section (a run config is one)."""
    data = read_yaml(path, "backend config")
    if not isinstance(data, dict) or not isinstance(data.get("backend"), dict):
        raise InputError(f"{path}: needs a 'backend:' mapping, e.g. backend: {{name: faster-whisper, model: tiny.en}}")
    try:
        spec = BackendSpec.model_validate(data["backend"])
    except ValidationError as exc:
        raise InputError(f"{path}: {format_validation_error(exc, 'backend')}") from None
    return (registry or Registry.default()).create(spec.name, spec.options)


def create_app(backend: Backend, model_name: str, api_key: str | None = None) -> Starlette:
    """The ASGI app; ``api_key`` (if given) must come as ``Authorization: Bearer <key>``."""
    one_at_a_time = asyncio.Lock()

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
        async with one_at_a_time:
            outcome = await run_in_threadpool(_transcribe, backend, data, upload.filename or "audio", language)
        if isinstance(outcome, _Failure):
            return _error(outcome.message, outcome.kind, outcome.status)
        text, duration = outcome
        if response_format == "text":
            return PlainTextResponse(text)
        if response_format == "verbose_json":
            return JSONResponse({"task": "transcribe", "language": language, "duration": duration, "text": text})
        return JSONResponse({"text": text})

    async def models(request: Request) -> JSONResponse:
        entry = {"id": model_name, "object": "model", "owned_by": "asrfair", "fingerprint": backend.fingerprint_id()}
        return JSONResponse({"object": "list", "data": [entry]})

    return Starlette(
        routes=[
            Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


class _Failure:
    def __init__(self, message: str, kind: str, status: int) -> None:
        self.message, self.kind, self.status = message, kind, status


def _transcribe(backend: Backend, data: bytes, filename: str, language: str) -> tuple[str, float] | _Failure:
    rate = backend.capabilities.sample_rate
    with tempfile.TemporaryDirectory(prefix="asrfair-serve-") as folder:
        path = Path(folder) / Path(filename).name
        path.write_bytes(data)
        utt = Utterance(id=uuid.uuid4().hex, audio=path, text="", language=language)
        try:
            samples = load_audio(utt, rate)
        except (AudioError, OSError, ValueError) as exc:
            return _Failure(f"cannot decode the uploaded file: {exc}", "invalid_request_error", 400)
    if samples.size == 0:
        return _Failure("the uploaded file holds no audio", "invalid_request_error", 400)
    needs_audio = backend.capabilities.needs_audio
    [transcript] = backend.transcribe([AudioRequest(utt, samples if needs_audio else None, rate)])
    if transcript.status != "ok" or transcript.text is None:
        return _Failure(transcript.error or "transcription failed", "server_error", 500)
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


def serve(backend: Backend, *, host: str, port: int, model_name: str, api_key: str | None) -> None:
    import uvicorn

    log.warning("serving %s as model '%s' on http://%s:%d/v1", backend.name, model_name, host, port)
    try:
        uvicorn.run(create_app(backend, model_name, api_key), host=host, port=port, log_level="warning")
    finally:
        backend.close()
