"""OpenAI ``POST /v1/audio/transcriptions``: bearer auth, multipart form, ``{"text": ...}``.

The recogniser returns the text, None to fail the clip with a 500, or a whole Response to answer
with instead (a broken 200: empty, null or missing text, not JSON)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


def openai_app(recognise: Callable[[bytes], str | Response | None], api_key: str | None = "sk-test") -> Starlette:
    forms: list[dict[str, str]] = []

    async def transcriptions(request: Request) -> Response:
        if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse(
                {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}, status_code=401
            )
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str) or not form.get("model"):
            return JSONResponse({"error": {"message": "file and model are required"}}, status_code=400)
        forms.append({k: v for k, v in form.items() if isinstance(v, str)})
        text = recognise(await upload.read())
        if isinstance(text, Response):
            return text
        if text is None:  # the recogniser chose to fail this clip
            return JSONResponse(
                {"error": {"message": "The server had an error", "type": "server_error"}}, status_code=500
            )
        if form.get("response_format") == "text":
            return PlainTextResponse(text)
        return JSONResponse({"text": text})

    app = Starlette(routes=[Route("/v1/audio/transcriptions", transcriptions, methods=["POST"])])
    app.state.forms = forms
    return app
