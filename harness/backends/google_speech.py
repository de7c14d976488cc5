"""Google Cloud Speech-to-Text v2, synchronous ``recognize`` over REST.

``POST {base_url}/v2/projects/{project}/locations/{location}/recognizers/{recognizer}:recognize``
with ``{"config": {"autoDecodingConfig": {}, "languageCodes": [...], "model": ...}, "content": <base64 WAV>}``
and a bearer OAuth access token. The answer is ``{"results": [{"alternatives": [{"transcript": ...}]}]}``;
the first alternative of each result is joined with spaces. Proto3 JSON leaves empty lists out, so
an answer without ``results`` means no speech was recognised: an empty transcript, a real answer,
when the answer's ``metadata.totalBilledDuration`` shows that the service processed the audio
(the proof of silence this backend trusts); without it, an empty answer is a failure (retried).

Credentials come from the environment only: ``$GOOGLE_OAUTH_ACCESS_TOKEN`` (for example from
``gcloud auth print-access-token``), else Application Default Credentials when the optional
``google-auth`` package is installed (refreshed before they expire, in a thread).
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import os
from typing import Any, ClassVar

from pydantic import Field, field_validator

from harness.backends.base import AudioRequest, describe_error
from harness.backends.remote import (
    DEFAULT_LOCALES,
    RejectedCredentials,
    RemoteBackend,
    RemoteError,
    RemoteOptions,
    Silence,
    json_field,
    require_locale,
    response_json,
)
from harness.data.manifest import Utterance
from harness.errors import BackendUnavailable

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
MAX_SECONDS = 60.0  # synchronous Recognize: at most 1 minute (and 10 MB) of audio per request


class GoogleSpeechOptions(RemoteOptions):
    project: str = Field(..., min_length=1, description="Google Cloud project id (required)")
    location: str = Field("global", min_length=1, description="'global', a multi-region ('us', 'eu') or a region")
    recognizer: str = Field("_", min_length=1, description="recognizer id; '_' is the implicit empty recognizer")
    model: str = Field("long", min_length=1, description="'long', 'short', 'telephony', 'chirp_2', 'chirp_3', ...")
    language_codes: list[str] | None = Field(
        None, description="BCP-47 codes for every utterance; default: the manifest's language as a locale"
    )
    locales: dict[str, str] = Field(
        default_factory=dict, description="bare manifest codes to locales, over the built-in map (en: en-US, ...)"
    )
    base_url: str | None = Field(
        None, description="API root; default https://speech.googleapis.com, or https://{location}-speech.googleapis.com"
    )
    access_token_env: str | None = Field(
        "GOOGLE_OAUTH_ACCESS_TOKEN", description="environment variable holding an OAuth access token; else ADC"
    )
    quota_project: str | None = Field(None, description="sent as x-goog-user-project (user credentials need one)")

    @field_validator("language_codes")
    @classmethod
    def _not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not all(code.strip() for code in value)):
            raise ValueError("language_codes must list at least one code, or be left out")
        return value


class GoogleSpeechBackend(RemoteBackend):
    name: ClassVar[str] = "google-speech"
    description: ClassVar[str] = "Google Cloud Speech-to-Text v2 synchronous recognize (REST, OAuth bearer token)"
    Options = GoogleSpeechOptions
    options: GoogleSpeechOptions

    def __init__(self, options: GoogleSpeechOptions) -> None:
        super().__init__(options)
        self._base_url = (options.base_url or default_base_url(options.location)).rstrip("/")
        self._url = (
            f"{self._base_url}/v2/projects/{options.project}/locations/{options.location}"
            f"/recognizers/{options.recognizer}:recognize"
        )
        self._locales = {**DEFAULT_LOCALES, **options.locales}
        self._token: str | None = None
        self._credentials: Any = None  # google.auth credentials when the token comes from ADC
        self._refresh_lock: asyncio.Lock | None = None
        self._refresh_error: type[Exception] = Exception
        env = options.access_token_env
        token = os.environ.get(env, "").strip() if env else ""
        if token:
            self._token = self.keep_secret(token)
        else:
            self._credentials = self._application_default_credentials()

    def _application_default_credentials(self) -> Any:
        env = self.options.access_token_env
        hint = f"export {env} (e.g. from `gcloud auth print-access-token`), or " if env else ""
        try:
            auth = importlib.import_module("google.auth")
            exceptions = importlib.import_module("google.auth.exceptions")
        except ImportError:
            raise BackendUnavailable(
                f"backend '{self.name}': no credentials: {hint}pip install google-auth and set up "
                "Application Default Credentials (`gcloud auth application-default login`)"
            ) from None
        try:
            credentials, _ = auth.default(scopes=[SCOPE])
        except exceptions.DefaultCredentialsError as exc:
            raise BackendUnavailable(
                f"backend '{self.name}': no credentials: {hint}set up Application Default Credentials "
                f"({describe_error(exc)})"
            ) from None
        self._refresh_error = exceptions.RefreshError
        return credentials

    async def _bearer(self) -> str:
        if self._token is not None and self._credentials is None:
            return self._token
        if self._refresh_lock is None:
            self._refresh_lock = asyncio.Lock()
        async with self._refresh_lock:  # one refresh for all requests in flight
            credentials = self._credentials
            if not credentials.valid:
                try:
                    transport = importlib.import_module("google.auth.transport.requests")
                    await asyncio.to_thread(credentials.refresh, transport.Request())
                except self._refresh_error as exc:
                    raise RejectedCredentials(f"Application Default Credentials were refused: {exc}") from None
                except Exception as exc:  # network trouble reaching the token endpoint fails this utterance
                    raise RemoteError(
                        f"could not refresh Application Default Credentials: {describe_error(exc)}"
                    ) from None
                if credentials.token and credentials.token != self._token:
                    self._token = self.keep_secret(credentials.token)
            if not self._token:
                raise RejectedCredentials("Application Default Credentials gave no access token")
            return self._token

    def language_codes(self, language: str) -> list[str]:
        if self.options.language_codes is not None:
            return list(self.options.language_codes)
        return [require_locale(language, self._locales, self.name)]

    def request_key(self, utt: Utterance, audio_key: str) -> str:
        try:
            codes = ",".join(self.language_codes(utt.language))
        except RemoteError:
            codes = "?"
        return f"{audio_key}|{utt.language}|{codes}"

    async def recognise(self, request: AudioRequest, audio: bytes) -> str | Silence:
        assert request.samples is not None
        seconds = len(request.samples) / request.sample_rate
        if seconds > MAX_SECONDS:
            raise RemoteError(
                f"clip is {seconds:.1f} s; synchronous recognize accepts at most {MAX_SECONDS:g} s "
                "(cut it into segments with offset/duration in the manifest)"
            )
        body = {
            "config": {
                "autoDecodingConfig": {},
                "languageCodes": self.language_codes(request.utterance.language),
                "model": self.options.model,
            },
            "content": base64.b64encode(audio).decode("ascii"),
        }
        headers = {"Authorization": f"Bearer {await self._bearer()}"}
        quota_project = self.options.quota_project or getattr(self._credentials, "quota_project_id", None)
        if quota_project:
            headers["x-goog-user-project"] = quota_project
        try:
            response = await self.send("POST", self._url, json=body, headers=headers)
        except RejectedCredentials as exc:
            if self._credentials is None and exc.status == 401:
                raise RejectedCredentials(
                    f"{exc} (access tokens expire after about an hour: refresh ${self.options.access_token_env}, "
                    "or unset it to use Application Default Credentials)",
                    status=exc.status,
                ) from None
            raise
        payload = response_json(response, "is base_url the API root?")
        if not isinstance(payload, dict):
            raise RemoteError("unexpected response: not a JSON object")
        return join_results(payload)

    def fingerprint(self) -> dict[str, Any]:
        o = self.options
        return {
            "engine": self.name,
            "api": "v2 recognize",
            "base_url": self._base_url,
            "project": o.project,
            "location": o.location,
            "recognizer": o.recognizer,
            "model": o.model,
            "language_codes": o.language_codes,
        }


def default_base_url(location: str) -> str:
    """Regional and multi-regional recognizers are served from their own endpoint."""
    return "https://speech.googleapis.com" if location == "global" else f"https://{location}-speech.googleapis.com"


def join_results(payload: dict[str, Any]) -> str | Silence:
    """The first alternative of each result, in order; no words with ``metadata.totalBilledDuration``
    is :class:`Silence`, no words without it an empty (unusable) answer."""
    results = payload.get("results") or []
    if not isinstance(results, list):
        raise RemoteError("unexpected response: 'results' is not a list")
    parts = []
    for index, result in enumerate(results):
        alternatives = result.get("alternatives") if isinstance(result, dict) else None
        if not alternatives:
            continue
        best = json_field(payload, "results", index, "alternatives", 0)
        transcript = best.get("transcript", "") if isinstance(best, dict) else None
        if not isinstance(transcript, str):
            raise RemoteError(f"unexpected response: 'results.{index}.alternatives.0.transcript' is not a string")
        if transcript.strip():
            parts.append(transcript.strip())
    metadata = payload.get("metadata")
    if not parts and isinstance(metadata, dict) and metadata.get("totalBilledDuration"):
        return Silence("no results, metadata.totalBilledDuration present")
    return " ".join(parts)
