"""Google Speech-to-Text v2 ``POST /v2/projects/{p}/locations/{l}/recognizers/{r}:recognize``.

Bearer token auth (401 ``UNAUTHENTICATED`` in Google's error shape), a JSON body with ``config``
(a decoding config, ``languageCodes``, ``model``) and base64 ``content`` (400 ``INVALID_ARGUMENT``
otherwise), an answer of one result per half of the words, ``{}`` when nothing was recognised
(proto3 JSON leaves empty lists out) and a 500 ``INTERNAL`` when the recogniser returns None.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def google_error(code: int, status: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}}, status_code=code)


def google_speech_app(recognise: Callable[[bytes], str | None], token: str | None = "ya29.test") -> Starlette:
    requests: list[dict[str, Any]] = []

    async def recognize(request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        if token is not None and auth != f"Bearer {token}":
            return google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential.",
            )
        if not request.headers.get("content-type", "").startswith("application/json"):
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        try:
            body = await request.json()
        except ValueError:
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        config = body.get("config") if isinstance(body, dict) else None
        problem = _config_problem(config)
        if problem is None and "uri" in body:
            problem = "Exactly one of content or uri must be set."
        if problem is None:
            try:
                audio = base64.b64decode(body.get("content", ""), validate=True)
            except (binascii.Error, TypeError):
                audio = b""
            if not audio.startswith(b"RIFF"):
                problem = "Audio data does not appear to be in a supported encoding."
        if problem is not None:
            return google_error(400, "INVALID_ARGUMENT", problem)
        requests.append(
            {
                "path_params": dict(request.path_params),
                "config": config,
                "headers": dict(request.headers),
            }
        )
        text = recognise(audio)
        if text is None:  # the recogniser chose to fail this clip
            return google_error(500, "INTERNAL", "Internal error encountered.")
        metadata = {"requestId": f"req-{len(requests)}", "totalBilledDuration": "1s"}
        words = text.split()
        if not words:
            return JSONResponse({"metadata": metadata})
        half = (len(words) + 1) // 2
        language = config["languageCodes"][0].lower()
        results = [
            {
                "alternatives": [{"transcript": (" " if i else "") + " ".join(chunk), "confidence": 0.92}],
                "resultEndOffset": f"{0.5 * (i + 1):g}s",
                "languageCode": language,
            }
            for i, chunk in enumerate(c for c in (words[:half], words[half:]) if c)
        ]
        return JSONResponse({"results": results, "metadata": metadata})

    path = "/v2/projects/{project}/locations/{location}/recognizers/{recognizer}:recognize"
    app = Starlette(routes=[Route(path, recognize, methods=["POST"])])
    app.state.requests = requests
    return app


def _config_problem(config: Any) -> str | None:
    if not isinstance(config, dict):
        return "config is required when the recognizer has no default_recognition_config."
    if "autoDecodingConfig" not in config and "explicitDecodingConfig" not in config:
        return "Exactly one of auto_decoding_config or explicit_decoding_config must be set."
    codes = config.get("languageCodes")
    if not isinstance(codes, list) or not codes or not all(isinstance(c, str) and c for c in codes):
        return "Missing language_codes."
    if not isinstance(config.get("model"), str) or not config["model"]:
        return "Missing model."
    return None
