"""Deepgram ``POST /v1/listen`` (pre-recorded): ``Token`` auth, raw audio body, query-string options.

Errors have Deepgram's shape, ``{"err_code", "err_msg", "request_id"}``: 401 for a wrong key, 400 for
a body that is not audio or a boolean option that is not ``true``/``false``, 500 when the recogniser
returns None. ``app.state.requests`` records each accepted request's query and headers.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import soundfile as sf
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

BOOLEAN_PARAMS = ("smart_format", "punctuate", "diarize", "numerals", "profanity_filter")


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"err_code": code, "err_msg": message, "request_id": str(uuid.uuid4())}, status_code=status)


def deepgram_app(recognise: Callable[[bytes], str | None], api_key: str | None = "dg-test") -> Starlette:
    requests: list[dict[str, Any]] = []

    async def listen(request: Request) -> JSONResponse:
        if api_key is not None and request.headers.get("authorization") != f"Token {api_key}":
            return error(401, "INVALID_AUTH", "Invalid credentials.")
        query = dict(request.query_params)
        for name in BOOLEAN_PARAMS:
            if name in query and query[name] not in ("true", "false"):
                return error(400, "Bad Request", f"Invalid query string. Failed to parse {name}: expected a boolean")
        content_type = request.headers.get("content-type", "")
        body = await request.body()
        if content_type.startswith("application/json"):
            return error(
                400, "Bad Request", "Content-type was application/json, but we could not process the JSON payload."
            )
        try:
            info = sf.info(io.BytesIO(body))
        except Exception:  # any undecodable body is Deepgram's 400
            return error(400, "Bad Request", "Bad Request: failed to process audio: corrupt or unsupported data")
        requests.append(
            {
                "query": query,
                "query_items": request.query_params.multi_items(),
                "content_type": content_type,
                "authorization": request.headers.get("authorization"),
            }
        )
        text = recognise(body)
        if text is None:  # the recogniser chose to fail this clip
            return error(500, "INTERNAL_SERVER_ERROR", "An internal server error occurred.")
        words = [{"word": w, "start": 0.0, "end": 0.0, "confidence": 0.99} for w in text.split()]
        return JSONResponse(
            {
                "metadata": {
                    "request_id": str(uuid.uuid4()),
                    "duration": info.duration,
                    "channels": 1,
                    "models": [str(uuid.uuid4())],
                    "model_info": {},
                },
                "results": {"channels": [{"alternatives": [{"transcript": text, "confidence": 0.99, "words": words}]}]},
            }
        )

    app = Starlette(routes=[Route("/v1/listen", listen, methods=["POST"])])
    app.state.requests = requests
    return app
