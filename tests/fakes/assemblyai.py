"""AssemblyAI's pre-recorded API: ``/v2/upload``, ``/v2/transcript`` jobs polled to completion, ``DELETE``.

The key is the bare ``authorization`` header on every route (401 ``{"error": ...}`` otherwise). A
job is ``queued``, then ``processing``, then ``completed`` (or ``error`` when the recogniser returns
None) on successive polls; a deleted transcript stays readable with its text redacted, as on the
real API. ``app.state`` records uploads, submitted bodies, the statuses served and the deletes.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

UPLOAD_ROOT = "https://cdn.assemblyai.com/upload/"
BOOLEAN_FIELDS = ("punctuate", "format_text", "language_detection", "speaker_labels")
DELETED_TEXT = "Deleted by user."


@dataclass
class Job:
    id: str
    body: dict[str, Any]
    text: str | None
    error: str | None
    polls: int = 0
    deleted: bool = False
    served: list[str] = field(default_factory=list)

    def status(self, steps: Sequence[str]) -> str:
        if self.polls < len(steps):
            return steps[self.polls]
        return "error" if self.error is not None else "completed"

    def view(self, status: str) -> dict[str, Any]:
        done = status == "completed"
        return {
            "id": self.id,
            "status": status,
            "audio_url": "http://deleted_by_user" if self.deleted else self.body.get("audio_url"),
            "language_code": self.body.get("language_code"),
            "punctuate": self.body.get("punctuate", True),
            "format_text": self.body.get("format_text", True),
            "speech_models": self.body.get("speech_models"),
            "speech_model_used": (self.body.get("speech_models") or ["universal-2"])[0] if done else None,
            "text": (DELETED_TEXT if self.deleted else self.text) if done else None,
            "words": None,
            "error": self.error if status == "error" else None,
        }


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def assemblyai_app(
    recognise: Callable[[bytes], str | None],
    api_key: str = "aai-test",
    steps: Sequence[str] = ("queued", "processing"),
    failure: str = "Transcoding failed. File does not appear to contain audio.",
) -> Starlette:
    """``steps``: the statuses the first polls of each job see before it finishes."""
    uploads: dict[str, bytes] = {}
    jobs: dict[str, Job] = {}
    submitted: list[dict[str, Any]] = []
    upload_headers: list[dict[str, str]] = []
    deletes: list[str] = []
    statuses: Counter = Counter()

    def authorised(request: Request) -> bool:
        return request.headers.get("authorization") == api_key

    async def upload(request: Request) -> JSONResponse:
        if not authorised(request):
            return error(401, "Authentication error, API token missing/invalid")
        body = await request.body()
        if not body:
            return error(
                400, "Upload failed, please try again. If you continue to have issues please reach out to support"
            )
        url = UPLOAD_ROOT + str(uuid.uuid4())
        uploads[url] = body
        upload_headers.append(dict(request.headers))
        return JSONResponse({"upload_url": url})

    async def create(request: Request) -> JSONResponse:
        if not authorised(request):
            return error(401, "Authentication error, API token missing/invalid")
        try:
            body = await request.json()
        except ValueError:
            return error(400, "Invalid JSON")
        if not isinstance(body, dict) or not body.get("audio_url"):
            return error(400, "Transcript creation error, audio_url not found")
        if "speech_model" in body:
            return error(400, 'speech_model is deprecated. Use "speech_models" instead.')
        for name in BOOLEAN_FIELDS:
            if name in body and not isinstance(body[name], bool):
                return error(400, f"{name} must be a boolean")
        if "language_code" in body and not isinstance(body["language_code"], str):
            return error(400, "language_code must be a string")
        models = body.get("speech_models")
        if models is not None and not (isinstance(models, list) and models and all(isinstance(m, str) for m in models)):
            return error(400, "speech_models must be a non-empty list of model names")
        submitted.append(body)
        audio = uploads.get(body["audio_url"])
        job_id = str(uuid.uuid4())
        if audio is None:
            job = Job(job_id, body, None, f"Download error, unable to download {body['audio_url']}")
        else:
            text = recognise(audio)
            job = Job(job_id, body, text, failure if text is None else None)
        jobs[job_id] = job
        return JSONResponse(job.view("queued"))

    async def transcript(request: Request) -> JSONResponse:
        if not authorised(request):
            return error(401, "Authentication error, API token missing/invalid")
        job = jobs.get(request.path_params["transcript_id"])
        if job is None:
            return error(404, "Transcript not found")
        if request.method == "DELETE":
            if job.status(steps) not in ("completed", "error"):
                return error(400, "Transcript is still being processed and cannot be deleted")
            job.deleted = True
            deletes.append(job.id)
            return JSONResponse(job.view(job.status(steps)))
        status = job.status(steps)
        job.polls += 1
        job.served.append(status)
        statuses[status] += 1
        return JSONResponse(job.view(status))

    app = Starlette(
        routes=[
            Route("/v2/upload", upload, methods=["POST"]),
            Route("/v2/transcript", create, methods=["POST"]),
            Route("/v2/transcript/{transcript_id}", transcript, methods=["GET", "DELETE"]),
        ]
    )
    app.state.uploads = uploads
    app.state.upload_headers = upload_headers
    app.state.jobs = jobs
    app.state.submitted = submitted
    app.state.deletes = deletes
    app.state.statuses = statuses
    return app
