"""Azure AI Speech, speech to text REST API for short audio.

``POST https://{region}.stt.speech.microsoft.com/speech/recognition/conversation/cognitiveservices/v1
?language=en-US&format=simple&profanity=raw`` with the WAV as the body, ``Ocp-Apim-Subscription-Key``
and ``Content-Type: audio/wav; codecs=audio/pcm; samplerate=16000``. The answer is
``{"RecognitionStatus": "Success", "DisplayText": ...}``; a request may hold at most 60 s of audio.

``RecognitionStatus`` decides what the answer means:

* ``Success``: ``DisplayText`` is the transcript; an empty one is an unusable answer (retried,
  then failed), like any empty 2xx answer.
* ``NoMatch`` (speech heard, no words of the language matched), ``InitialSilenceTimeout`` (only
  silence) and ``BabbleTimeout`` (only noise): the API's proof of silence (:class:`Silence`), so the
  transcript is empty and scores as deletions. Counting them as failures would drop exactly the
  clips an engine cannot hear (noisy conditions, unfamiliar accents) from WER and hide disparity.
* ``Error`` ("internal error ... try again"): retried like a 5xx; then the utterance fails.
* anything else: the utterance fails, naming the status.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from harness.backends.base import AudioRequest
from harness.backends.remote import (
    DEFAULT_LOCALES,
    RemoteBackend,
    RemoteError,
    RemoteOptions,
    Silence,
    json_field,
    json_text,
    read_secret,
    require_locale,
    response_json,
)
from harness.data.manifest import Utterance

PATH = "/speech/recognition/conversation/cognitiveservices/v1"
CONTENT_TYPE = "audio/wav; codecs=audio/pcm; samplerate=16000"
MAX_SECONDS = 60.0  # "no more than 60 seconds of audio" per request
NO_SPEECH = frozenset({"NoMatch", "InitialSilenceTimeout", "BabbleTimeout"})


class AzureSpeechOptions(RemoteOptions):
    region: str | None = Field(None, pattern=r"^[a-z0-9]+$", description="Speech resource region, e.g. westeurope")
    base_url: str | None = Field(
        None, description="endpoint root instead of https://{region}.stt.speech.microsoft.com (sovereign clouds)"
    )
    api_key_env: str = Field("AZURE_SPEECH_KEY", description="environment variable holding the resource key")
    language: str | None = Field(None, description="locale for every utterance (en-GB); default: the manifest's")
    locales: dict[str, str] = Field(
        default_factory=dict, description="bare manifest codes to locales, over the built-in map (en: en-US, ...)"
    )
    profanity: str = Field("raw", pattern=r"^(raw|masked|removed)$", description="raw keeps every word")
    endpoint_id: str | None = Field(None, description="Custom Speech endpoint id, sent as cid")

    @model_validator(mode="after")
    def _somewhere(self) -> AzureSpeechOptions:
        if self.region is None and self.base_url is None:
            raise ValueError("set 'region' (e.g. westeurope) or 'base_url'")
        return self


class AzureSpeechBackend(RemoteBackend):
    name: ClassVar[str] = "azure-speech"
    description: ClassVar[str] = "Azure AI Speech REST API for short audio (≤ 60 s per utterance, resource key)"
    default_model: ClassVar[str] = "the base model for the locale (or the Custom Speech endpoint_id)"
    Options = AzureSpeechOptions
    options: AzureSpeechOptions

    def __init__(self, options: AzureSpeechOptions) -> None:
        super().__init__(options)
        self._key = self.keep_secret(read_secret(options.api_key_env, self.name))
        root = (options.base_url or f"https://{options.region}.stt.speech.microsoft.com").rstrip("/")
        self._url = root if root.endswith(PATH) else root + PATH
        self._locales = {**DEFAULT_LOCALES, **options.locales}

    def locale(self, language: str) -> str:
        if self.options.language is not None:
            return self.options.language
        return require_locale(language, self._locales, self.name)

    def request_key(self, utt: Utterance, audio_key: str) -> str:
        try:
            locale = self.locale(utt.language)
        except RemoteError:
            locale = "?"
        return f"{audio_key}|{utt.language}|{locale}"

    async def recognise(self, request: AudioRequest, audio: bytes) -> str | Silence:
        assert request.samples is not None
        seconds = len(request.samples) / request.sample_rate
        if seconds > MAX_SECONDS:
            raise RemoteError(
                f"clip is {seconds:.1f} s; the short-audio API accepts at most {MAX_SECONDS:g} s "
                "(cut it into segments with offset/duration in the manifest)"
            )
        params = {"language": self.locale(request.utterance.language), "format": "simple"}
        params["profanity"] = self.options.profanity
        if self.options.endpoint_id:
            params["cid"] = self.options.endpoint_id
        headers = {
            "Ocp-Apim-Subscription-Key": self._key or "",
            "Content-Type": CONTENT_TYPE,
            "Accept": "application/json",
        }
        response = await self.send("POST", self._url, params=params, content=audio, headers=headers)
        return read_answer(response_json(response, "is base_url the endpoint root?"))  # retried by the caller

    def fingerprint(self) -> dict[str, Any]:
        o = self.options
        return {
            "engine": self.name,
            "api": "short-audio v1",
            "endpoint": self._url,
            "language": o.language,
            "profanity": o.profanity,
            "endpoint_id": o.endpoint_id,
            "format": "simple",
        }


def read_answer(payload: Any) -> str | Silence:
    """``DisplayText`` on Success, :class:`Silence` for the no-speech statuses, else a RemoteError."""
    status = json_field(payload, "RecognitionStatus")
    if status == "Success":
        return json_text(payload, "DisplayText")
    if status in NO_SPEECH:
        return Silence(f"RecognitionStatus {status}")
    if status == "Error":
        raise RemoteError("RecognitionStatus Error (the service's internal error)", retryable=True)
    raise RemoteError(f"RecognitionStatus {status!r}")
