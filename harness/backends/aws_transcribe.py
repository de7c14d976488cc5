"""Amazon Transcribe batch jobs: upload each utterance to S3, start a job, poll it, read its transcript.

Per utterance: ``PutObject`` the WAV to ``s3://{bucket}/{prefix}{job}.wav``,
``StartTranscriptionJob`` (``MediaFormat=wav``, the request's sample rate, the language code,
optionally ``Settings.VocabularyName``, output to ``{prefix}{job}.json`` in the same bucket),
``GetTranscriptionJob`` with growing waits until ``COMPLETED`` or ``FAILED``, ``GetObject`` the
transcript JSON (``results.transcripts[0].transcript``), then delete the media object, the
transcript object and the job, unless ``keep: true``. Cleanup runs whether the utterance
succeeded or not. A ``FAILED`` job is that utterance's failure, with Amazon's ``FailureReason``.

boto3 is synchronous: each call runs on a worker thread of a pool sized to ``concurrency``, so
up to ``concurrency`` jobs are in flight while the event loop sleeps between polls. botocore's
own retries are switched off (``total_max_attempts=1``) so that ``max_attempts`` and the backoff
options mean what they mean for every other remote backend: throttling, 5xx answers, timeouts and
dropped connections are retried by :meth:`RemoteBackend.retrying`.

Credentials come only from boto3's standard chain (environment, profile, container or instance
role), never from options, and are redacted from every recorded message.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from pydantic import Field

from harness.backends.base import AudioRequest
from harness.backends.remote import (
    DEFAULT_LOCALES,
    FatalRemoteError,
    Poll,
    RejectedCredentials,
    RemoteBackend,
    RemoteError,
    RemoteOptions,
    json_field,
    to_locale,
)
from harness.data.manifest import Utterance
from harness.errors import BackendUnavailable

log = logging.getLogger(__name__)

PIP_HINT = "pip install 'asr-fairness-harness[aws]'"


# Error codes that mean "try again later" (throttling, quotas on jobs in flight, transient faults).
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "SlowDown",
        "PriorRequestNotComplete",
        "ProvisionedThroughputExceededException",
        "InternalFailure",
        "InternalFailureException",
        "InternalError",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# Error codes that mean every later call would fail the same way: the run stops with one line.
CREDENTIAL_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "InvalidToken",
        "MissingAuthenticationTokenException",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)
_JOB_GONE = frozenset({"BadRequestException", "NotFoundException"})  # DeleteTranscriptionJob of an unknown job
_STATIC_CREDENTIALS = frozenset({"env", "explicit", "shared-credentials-file", "config-file"})


class AWSTranscribeOptions(RemoteOptions):
    bucket: str = Field(..., min_length=3, description="S3 bucket for media and transcripts, in the same region")
    prefix: str = Field("asrfair/", description="key prefix for everything this backend writes")
    locales: dict[str, str] = Field(
        default_factory=dict, description="bare manifest codes to locales, over the built-in map (en: en-US, ...)"
    )
    region: str | None = Field(None, description="AWS region; default: boto3's (AWS_REGION, profile)")
    language_code: str | None = Field(
        None, description="Transcribe locale, e.g. en-GB; default: mapped from the manifest's language (en -> en-US)"
    )
    vocabulary_name: str | None = Field(None, description="custom vocabulary (Settings.VocabularyName)")
    keep: bool = Field(False, description="keep media, transcripts and jobs instead of deleting them")
    endpoint_url: str | None = Field(None, description="one endpoint for S3 and Transcribe (LocalStack, tests)")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (VPC endpoint, tests); overrides endpoint_url")
    transcribe_endpoint_url: str | None = Field(
        None, description="Transcribe endpoint (VPC endpoint, tests); overrides endpoint_url"
    )
    poll_initial: float = Field(1.0, gt=0, description="seconds before the second status check (grows x1.5)")
    poll_max: float = Field(15.0, gt=0, description="longest wait between status checks")
    poll_deadline: float = Field(1800.0, gt=0, description="seconds a job may take before the utterance fails")


class AWSTranscribeBackend(RemoteBackend):
    name: ClassVar[str] = "aws-transcribe"
    description: ClassVar[str] = "Amazon Transcribe batch jobs, media staged in S3 (credentials: boto3's chain)"
    default_model: ClassVar[str] = "Amazon Transcribe's model for the locale (not selectable)"
    Options = AWSTranscribeOptions
    options: AWSTranscribeOptions

    def __init__(self, options: AWSTranscribeOptions) -> None:
        super().__init__(options)
        self._locales = {**DEFAULT_LOCALES, **options.locales}
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise BackendUnavailable(f"backend '{self.name}' needs boto3: {PIP_HINT}") from None
        session = boto3.session.Session(region_name=options.region)
        self.region = session.region_name
        if not self.region:
            raise BackendUnavailable(
                f"backend '{self.name}': no AWS region; set option 'region' or the AWS_REGION environment variable"
            )
        credentials = session.get_credentials()
        if credentials is None:
            raise BackendUnavailable(
                f"backend '{self.name}': no AWS credentials found; boto3 looks in AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, then the container or instance role "
                "(credentials are never read from the run config)"
            )
        if credentials.method in _STATIC_CREDENTIALS:  # temporary ones would need a network fetch here
            frozen = credentials.get_frozen_credentials()
            for secret in (frozen.access_key, frozen.secret_key, frozen.token):
                self.keep_secret(secret)
        for name in ("botocore", "boto3"):  # their debug log prints request headers: key id, session token
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.INFO)
        pool = options.concurrency + 4  # cleanup of one utterance may overlap the next one's upload
        config = Config(
            region_name=self.region,
            max_pool_connections=pool,
            connect_timeout=options.timeout,
            read_timeout=options.timeout,
            retries={"mode": "standard", "total_max_attempts": 1},  # retried by RemoteBackend.retrying
            user_agent_extra="asrfair",
        )
        self._s3_endpoint = options.s3_endpoint_url or options.endpoint_url
        self._transcribe_endpoint = options.transcribe_endpoint_url or options.endpoint_url
        self._s3_client = session.client("s3", endpoint_url=self._s3_endpoint, config=config)
        self._transcribe_client = session.client("transcribe", endpoint_url=self._transcribe_endpoint, config=config)
        self._executor = ThreadPoolExecutor(max_workers=pool, thread_name_prefix="aws-transcribe")
        self._schedule = Poll(initial=options.poll_initial, maximum=options.poll_max, deadline=options.poll_deadline)

    def language_for(self, utt: Utterance) -> str | None:
        """The Transcribe locale for an utterance: the option, a locale in the manifest, or the mapping."""
        if self.options.language_code:
            return self.options.language_code
        return to_locale(utt.language, self._locales)

    def request_key(self, utt: Utterance, audio_key: str) -> str:
        return f"{audio_key}|{self.language_for(utt) or utt.language}"

    async def recognise(self, request: AudioRequest, audio: bytes) -> str:
        language_code = self.language_for(request.utterance)
        if language_code is None:
            raise RemoteError(
                f"no Transcribe language code for manifest language '{request.utterance.language}'; "
                "set option 'language_code' (e.g. en-GB) or use a locale in the manifest"
            )
        job = f"asrfair-{hashlib.sha256(audio).hexdigest()[:16]}-{uuid.uuid4().hex[:12]}"
        media_key = f"{self.options.prefix}{job}.wav"
        output_key = f"{self.options.prefix}{job}.json"
        # Set before each call (an upload or start that timed out or was cancelled may still land)
        # and cleared when the service refused it outright.
        uploaded = started = False
        try:
            uploaded = True
            try:
                await self._call(
                    "upload", self._s3_client.put_object, Bucket=self.options.bucket, Key=media_key, Body=audio
                )
            except FatalRemoteError:
                uploaded = False
                raise
            started = True
            try:
                await self._start(job, media_key, output_key, language_code, request.sample_rate)
            except FatalRemoteError:
                started = False
                raise
            await self._wait_for(job)
            body = await self._call("read", self._read_object, output_key)
            return self._transcript_text(body)
        finally:
            if not self.options.keep:
                await self._cleanup(job, media_key if uploaded else None, output_key if started else None)

    async def _start(self, job: str, media_key: str, output_key: str, language_code: str, sample_rate: int) -> None:
        params: dict[str, Any] = {
            "TranscriptionJobName": job,
            "LanguageCode": language_code,
            "MediaFormat": "wav",
            "MediaSampleRateHertz": sample_rate,
            "Media": {"MediaFileUri": f"s3://{self.options.bucket}/{media_key}"},
            "OutputBucketName": self.options.bucket,
            "OutputKey": output_key,
        }
        if self.options.vocabulary_name:
            params["Settings"] = {"VocabularyName": self.options.vocabulary_name}
        tries = 0

        def start() -> Any:
            nonlocal tries
            tries += 1
            try:
                return self._transcribe_client.start_transcription_job(**params)
            except Exception as exc:
                # A retry after an answer that was lost: the job name is ours alone, so it is our job.
                if tries > 1 and _error_code(exc) == "ConflictException":
                    return None
                raise

        await self._call("start", start, limited=True)

    async def _wait_for(self, job: str) -> None:
        async def check() -> str | None:
            answer = await self._call(
                "poll", self._transcribe_client.get_transcription_job, limited=True, TranscriptionJobName=job
            )
            status = json_field(answer, "TranscriptionJob", "TranscriptionJobStatus")
            if status == "COMPLETED":
                return status
            if status == "FAILED":
                reason = answer["TranscriptionJob"].get("FailureReason") or "no FailureReason given"
                raise RemoteError(f"poll: transcription job {job} FAILED: {reason}")
            return None

        try:
            await self.poll(check, self._schedule)
        except RemoteError as exc:
            if str(exc).startswith("poll: "):
                raise
            raise RemoteError(f"poll: {exc}", status=exc.status) from None

    def _read_object(self, key: str) -> bytes:
        limit = self.options.max_response_bytes
        body = self._s3_client.get_object(Bucket=self.options.bucket, Key=key)["Body"].read(limit + 1)
        if len(body) > limit:
            raise RemoteError(f"read: transcript file over max_response_bytes ({limit:,})")
        return body

    @staticmethod
    def _transcript_text(body: bytes) -> str:
        try:
            payload = json.loads(body)
        except ValueError:
            raise RemoteError("read: transcript file is not JSON") from None
        try:
            text = json_field(payload, "results", "transcripts", 0, "transcript")
        except RemoteError as exc:
            raise RemoteError(f"read: {exc}") from None
        if not isinstance(text, str):
            raise RemoteError("read: 'results.transcripts.0.transcript' is not a string")
        return text

    async def _cleanup(self, job: str, media_key: str | None, output_key: str | None) -> None:
        """Delete what this utterance created; a failure here is logged, never the utterance's."""
        bucket = self.options.bucket
        steps: list[tuple[str, Callable[[], Any], bool]] = []  # (what, how, is a Transcribe call)
        if output_key is not None:
            steps.append((f"job {job}", functools.partial(self._delete_job, job), True))
            steps.append((f"s3://{bucket}/{output_key}", functools.partial(self._delete_object, output_key), False))
        if media_key is not None:
            steps.append((f"s3://{bucket}/{media_key}", functools.partial(self._delete_object, media_key), False))
        for what, delete, limited in steps:
            try:
                await self._call("cleanup", delete, limited=limited)
            except Exception as exc:  # keep going: the other objects still need deleting
                log.warning("%s: could not delete %s: %s", self.name, what, self.redact(str(exc)))

    def _delete_job(self, job: str) -> None:
        try:
            self._transcribe_client.delete_transcription_job(TranscriptionJobName=job)
        except Exception as exc:
            if _error_code(exc) not in _JOB_GONE:
                raise
            log.debug("%s: job %s was not there to delete (start refused, or already gone)", self.name, job)

    def _delete_object(self, key: str) -> None:
        self._s3_client.delete_object(Bucket=self.options.bucket, Key=key)

    async def _call(self, step: str, fn: Callable[..., Any], *args: Any, limited: bool = False, **kwargs: Any) -> Any:
        """One boto3 call on a worker thread, rate limited (Transcribe calls) and retried."""
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs)

        async def attempt() -> Any:
            if limited and self._limiter is not None:
                await self._limiter.acquire()
            try:
                return await loop.run_in_executor(self._executor, call)
            except RemoteError:
                raise
            except Exception as exc:
                raise self._classify(step, exc) from None

        return await self.retrying(attempt)

    def _classify(self, step: str, exc: Exception) -> RemoteError:
        """A botocore exception as a RemoteError naming the step; retryable when trying again can help."""
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            message = str(error.get("Message") or "").strip() or "no message"
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return FatalRemoteError(
                    f"{step}: bucket '{self.options.bucket}' does not exist (NoSuchBucket); create it in "
                    f"{self.region} or fix option 'bucket'",
                    status=status,
                )
            text = f"{step}: {code}: {message}"
            if code in CREDENTIAL_CODES or status in (401, 403):
                return RejectedCredentials(f"{text} (check the AWS credentials and IAM permissions)", status=status)
            retryable = code in RETRYABLE_CODES or status in (429, 500, 502, 503, 504)
            return RemoteError(text, retryable=retryable, status=status)
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return RejectedCredentials(f"{step}: {exc}")
        if isinstance(exc, ConnectionError | HTTPClientError):
            return RemoteError(f"{step}: {type(exc).__name__}: {exc}", retryable=True)
        return RemoteError(f"{step}: {type(exc).__name__}: {exc}")

    def fingerprint(self) -> dict[str, Any]:
        o = self.options
        return {
            "engine": self.name,
            "region": self.region,
            "endpoint": self._transcribe_endpoint,  # another server (LocalStack) is another engine
            "language_code": o.language_code,  # None: mapped per utterance, and the mapping is in request_key
            "vocabulary_name": o.vocabulary_name,
            "media_format": "wav",
        }

    def close(self) -> None:
        super().close()
        self._executor.shutdown(wait=True)
        for client in (self._s3_client, self._transcribe_client):
            client.close()


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None
