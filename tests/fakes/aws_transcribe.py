"""Amazon Transcribe's batch API (JSON 1.1 protocol) as a loopback stand-in that really transcribes.

moto's Transcribe only fakes status transitions: it never reads the media and never writes a
transcript file, so it cannot answer a client that reads its results. This app speaks the same
wire protocol (``POST /``, ``X-Amz-Target: Transcribe.<Operation>``, ``application/x-amz-json-1.1``,
SigV4 ``Authorization`` scoped to ``{region}/transcribe``, errors as ``{"__type", "message"}``)
and keeps its media and transcripts in a real S3: on ``StartTranscriptionJob`` it reads the media
from S3 (moto's server, through boto3), runs the recogniser, and when the job completes writes the
Amazon-format transcript JSON to ``OutputBucketName``/``OutputKey``.

Jobs report ``QUEUED``, then ``IN_PROGRESS`` for ``pending_polls`` status checks, then
``COMPLETED``, or ``FAILED`` with ``failure_reason`` when the recogniser returns None.
``throttle`` is the fraction of calls answered ``ThrottlingException`` (seeded); with ``lose_every=n``
every n-th job created is answered ``InternalFailureException`` all the same (a lost answer). What the
app saw is on ``app.state``: ``jobs`` (name -> job), ``starts`` (request bodies), ``calls``
(a Counter of operations and injected faults), ``regions`` (signing regions),
``peak`` (``{"jobs": the most jobs that existed at once}``).
"""

from __future__ import annotations

import io
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
import soundfile as sf
from moto.server import ThreadedMotoServer
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

JSON_11 = "application/x-amz-json-1.1"
MEDIA_FORMATS = frozenset({"mp3", "mp4", "wav", "flac", "ogg", "amr", "webm", "m4a"})
JOB_NAME = re.compile(r"^[0-9a-zA-Z._-]{1,200}$")
LOCALE = re.compile(r"^[a-z]{2}-[A-Z]{2}$")
SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
ACCOUNT = "123456789012"


class AWSError(Exception):
    def __init__(self, kind: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status


def transcribe_app(
    recognise: Callable[[bytes], str | None],
    s3_endpoint: str,
    *,
    region: str = "us-east-1",
    pending_polls: int = 1,
    throttle: float = 0.0,
    lose_every: int = 0,
    failure_reason: str = "The media file doesn't contain speech that can be transcribed.",
    vocabularies: Iterable[str] = (),
    seed: int = 0,
) -> Starlette:
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=region,
        aws_access_key_id="stand-in",
        aws_secret_access_key="stand-in",
    )
    known_vocabularies = set(vocabularies)
    jobs: dict[str, dict[str, Any]] = {}
    starts: list[dict[str, Any]] = []
    calls: Counter = Counter()
    regions: set[str] = set()
    peak = {"jobs": 0}
    lock = threading.Lock()
    rng = random.Random(seed)

    def draw() -> float:
        with lock:
            return rng.random()

    def start(body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("TranscriptionJobName", "")
        if not JOB_NAME.match(name) or name in (".", ".."):
            raise AWSError("BadRequestException", f"1 validation error detected: invalid TranscriptionJobName '{name}'")
        language = body.get("LanguageCode")
        if not isinstance(language, str) or not LOCALE.match(language):
            raise AWSError("BadRequestException", f"1 validation error detected: Value '{language}' at 'languageCode'")
        media_format = body.get("MediaFormat", "wav")
        if media_format not in MEDIA_FORMATS:
            raise AWSError(
                "BadRequestException", f"1 validation error detected: Value '{media_format}' at 'mediaFormat'"
            )
        uri = body.get("Media", {}).get("MediaFileUri", "")
        vocabulary = body.get("Settings", {}).get("VocabularyName")
        if vocabulary is not None and vocabulary not in known_vocabularies:
            raise AWSError(
                "BadRequestException",
                "The requested vocabulary couldn't be found. Check the vocabulary name and try your request again.",
            )
        bucket = body.get("OutputBucketName")
        if not bucket:
            raise AWSError("BadRequestException", "this stand-in writes transcripts only to an OutputBucketName")
        key = body.get("OutputKey") or ""
        output_key = key if key.endswith(".json") else f"{key.rstrip('/') + '/' if key else ''}{name}.json"
        text, reason = hear(uri, body.get("MediaSampleRateHertz"))
        job = {
            "TranscriptionJobName": name,
            "TranscriptionJobStatus": "QUEUED",
            "LanguageCode": language,
            "MediaFormat": media_format,
            "Media": {"MediaFileUri": uri},
            "CreationTime": time.time(),
            "Settings": body.get("Settings", {}),
            "_bucket": bucket,
            "_key": output_key,
            "_text": text,
            "_reason": reason,
            "_polls": 0,
        }
        if "MediaSampleRateHertz" in body:
            job["MediaSampleRateHertz"] = body["MediaSampleRateHertz"]
        with lock:
            if name in jobs:
                raise AWSError("ConflictException", "The requested job name already exists. Use a different job name.")
            jobs[name] = job
            starts.append(body)
            peak["jobs"] = max(peak["jobs"], len(jobs))
            lost = bool(lose_every) and len(starts) % lose_every == 0
        return {"TranscriptionJob": public(job), "_lost": lost}

    def hear(uri: str, sample_rate: int | None) -> tuple[str | None, str | None]:
        """The recogniser's text, or the reason the job will fail."""
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            return None, f"The URI {uri} isn't valid. Specify an Amazon S3 URI and try your request again."
        try:
            wav = s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
        except Exception:
            return None, f"The specified S3 object {uri} couldn't be found or accessed."
        try:
            actual = sf.info(io.BytesIO(wav)).samplerate
        except Exception:
            return None, "The media format provided does not match the detected media format."
        if sample_rate is not None and sample_rate != actual:
            return None, f"The specified sample rate {sample_rate} doesn't match the detected sample rate {actual}."
        text = recognise(wav)
        return (text, None) if text is not None else (None, failure_reason)

    def get(body: dict[str, Any]) -> dict[str, Any]:
        job = find(body.get("TranscriptionJobName", ""))
        with lock:
            job["_polls"] += 1
            polls, status = job["_polls"], job["TranscriptionJobStatus"]
        if status in ("QUEUED", "IN_PROGRESS") and polls > pending_polls:
            finish(job)
        elif status == "QUEUED":
            job["TranscriptionJobStatus"] = "IN_PROGRESS"
            job["StartTime"] = time.time()
        return {"TranscriptionJob": public(job)}

    def finish(job: dict[str, Any]) -> None:
        job["CompletionTime"] = time.time()
        if job["_text"] is None:
            job["TranscriptionJobStatus"] = "FAILED"
            job["FailureReason"] = job["_reason"]
            return
        transcript = {
            "jobName": job["TranscriptionJobName"],
            "accountId": ACCOUNT,
            "status": "COMPLETED",
            "results": {"transcripts": [{"transcript": job["_text"]}], "items": []},
        }
        s3.put_object(Bucket=job["_bucket"], Key=job["_key"], Body=json.dumps(transcript).encode())
        job["TranscriptionJobStatus"] = "COMPLETED"
        job["Transcript"] = {"TranscriptFileUri": f"https://s3.{region}.amazonaws.com/{job['_bucket']}/{job['_key']}"}

    def delete(body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("TranscriptionJobName", "")
        with lock:
            if jobs.pop(name, None) is None:
                raise AWSError("BadRequestException", missing_job())
        return {}

    def listing(body: dict[str, Any]) -> dict[str, Any]:
        wanted = body.get("Status")
        with lock:
            chosen = [j for j in jobs.values() if wanted in (None, j["TranscriptionJobStatus"])]
        keys = ("TranscriptionJobName", "TranscriptionJobStatus", "LanguageCode", "CreationTime", "FailureReason")
        return {"TranscriptionJobSummaries": [{k: j[k] for k in keys if k in j} for j in chosen]}

    def find(name: str) -> dict[str, Any]:
        with lock:
            job = jobs.get(name)
        if job is None:
            raise AWSError("BadRequestException", missing_job())
        return job

    operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "StartTranscriptionJob": start,
        "GetTranscriptionJob": get,
        "DeleteTranscriptionJob": delete,
        "ListTranscriptionJobs": listing,
    }

    async def endpoint(request: Request) -> JSONResponse:
        try:
            operation = authorise(request)
            if request.headers.get("content-type", "").split(";")[0] != JSON_11:
                raise AWSError("SerializationException", f"Content-Type must be {JSON_11}")
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                raise AWSError("SerializationException", "request body is not JSON") from None
            calls[operation] += 1
            if throttle and draw() < throttle:
                calls["throttled"] += 1
                raise AWSError("ThrottlingException", "Rate exceeded")
            answer = await run_in_threadpool(operations[operation], body)
            if answer.pop("_lost", False):
                calls["lost_start"] += 1  # the job exists, but the client never hears so
                raise AWSError("InternalFailureException", "We encountered an internal error.", status=500)
        except AWSError as error:
            return JSONResponse(
                {"__type": error.kind, "message": error.message},
                status_code=error.status,
                headers={"x-amzn-ErrorType": error.kind},
                media_type=JSON_11,
            )
        return JSONResponse(answer, media_type=JSON_11)

    def authorise(request: Request) -> str:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            calls["unsigned"] += 1
            raise AWSError("MissingAuthenticationTokenException", "Missing Authentication Token", status=403)
        scope = SCOPE.search(auth)
        if scope is None or scope["service"] != "transcribe":
            raise AWSError(
                "InvalidSignatureException", "Credential should be scoped to correct service: 'transcribe'.", 403
            )
        if scope["region"] != region:
            raise AWSError("InvalidSignatureException", "Credential should be scoped to a valid region.", 403)
        regions.add(scope["region"])
        target = request.headers.get("x-amz-target", "")
        service, _, operation = target.partition(".")
        if service != "Transcribe" or operation not in operations:
            raise AWSError("UnknownOperationException", f"unknown operation {target!r}")
        return operation

    app = Starlette(routes=[Route("/", endpoint, methods=["POST"])])
    app.state.jobs = jobs
    app.state.starts = starts
    app.state.calls = calls
    app.state.regions = regions
    app.state.peak = peak
    return app


def public(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if not k.startswith("_")}


def missing_job() -> str:
    return "The requested job couldn't be found. Check the job name and try your request again."


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    """A real moto S3 server on 127.0.0.1 for the module's tests: the bucket the backend uploads to."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
