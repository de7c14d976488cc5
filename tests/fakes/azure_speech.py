"""Azure Speech short-audio ``POST /speech/recognition/conversation/cognitiveservices/v1``.

``Ocp-Apim-Subscription-Key`` auth (401 for a wrong key, 403 for none, in the gateway's error
shape), ``language`` required in the query (400 otherwise), the PCM WAV content type and a 16 kHz
mono WAV body (400 otherwise). The answer is the ``simple`` format: ``DisplayText`` capitalised and
punctuated as the service does; an empty recognition gives ``empty_status`` (``NoMatch``), a None
from the recogniser ``RecognitionStatus: Error``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import soundfile as sf
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PATH = "/speech/recognition/conversation/cognitiveservices/v1"
CONTENT_TYPES = ("audio/wav; codecs=audio/pcm; samplerate=16000", "audio/ogg; codecs=opus")


def azure_speech_app(
    recognise: Callable[[bytes], str | None], key: str | None = "azure-test-key", empty_status: str = "NoMatch"
) -> Starlette:
    requests: list[dict[str, Any]] = []

    async def recognize(request: Request) -> JSONResponse:
        given = request.headers.get("ocp-apim-subscription-key")
        if key is not None and not given:
            return _gateway_error(
                403,
                "Access denied due to missing subscription key. Make sure to include subscription key when making "
                "requests to an API.",
            )
        if key is not None and given != key:
            return _gateway_error(
                401,
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
                "key for an active subscription and use a correct regional API endpoint for your resource.",
            )
        query = dict(request.query_params)
        if not query.get("language"):
            return JSONResponse({"error": "The language parameter is required."}, status_code=400)
        if request.headers.get("content-type", "").lower() not in CONTENT_TYPES:
            return JSONResponse({"error": "Unsupported audio format."}, status_code=400)
        audio = await request.body()
        try:
            info = sf.info(io.BytesIO(audio))
        except Exception:  # soundfile raises its own error type for anything that is not audio
            return JSONResponse({"error": "Invalid audio file."}, status_code=400)
        if (info.format, info.samplerate, info.channels) != ("WAV", 16_000, 1):
            return JSONResponse({"error": "Audio must be 16 kHz mono PCM WAV."}, status_code=400)
        requests.append({"query": query, "headers": dict(request.headers), "seconds": info.duration})
        text = recognise(audio)
        if text is None:  # the recogniser chose to fail this clip
            return JSONResponse({"RecognitionStatus": "Error", "Offset": 0, "Duration": 0})
        if not text.strip():
            return JSONResponse({"RecognitionStatus": empty_status, "Offset": 0, "Duration": 0})
        display = text.strip()[0].upper() + text.strip()[1:] + "."
        ticks = int(info.duration * 10_000_000)
        body = {"RecognitionStatus": "Success", "DisplayText": display, "Offset": 400_000, "Duration": ticks}
        return JSONResponse(body)

    app = Starlette(routes=[Route(PATH, recognize, methods=["POST"])])
    app.state.requests = requests
    return app


def _gateway_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": str(status), "message": message}}, status_code=status)
