"""Deepgram pre-recorded transcription: one synchronous request per utterance.

``POST {base_url}/v1/listen?model=...&language=...&smart_format=...&punctuate=...`` with the raw
WAV as the body (``Content-Type: audio/wav``) and ``Authorization: Token <key>``; the text is
``results.channels[0].alternatives[0].transcript``. Formatting is off by default: the harness
normalises text itself, and smart formatting (numerals, currency) would be scored as substitutions.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from harness.backends.base import AudioRequest
from harness.backends.remote import (
    RemoteBackend,
    RemoteOptions,
    json_text,
    read_secret,
    response_json,
)

ParamValue = str | bool | int | float | list[str]
_OWN_PARAMS = ("model", "language", "smart_format", "punctuate")


class DeepgramOptions(RemoteOptions):
    base_url: str = Field("https://api.deepgram.com", description="API root, without /v1 (a self-hosted server's URL)")
    api_key_env: str | None = Field(
        "DEEPGRAM_API_KEY",
        description="environment variable holding the key; null for self-hosted servers without auth",
    )
    model: str = Field("nova-2", description="model name, e.g. nova-2, nova-3, whisper-large")
    language: str | None = Field(
        None, description="BCP-47 code such as en or en-GB; default: the manifest's per utterance"
    )
    smart_format: bool = Field(False, description="Deepgram's smart formatting (numerals, dates, punctuation)")
    punctuate: bool = Field(False, description="add punctuation and capitalisation")
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="further /v1/listen query parameters, sent as given (e.g. version, keyterm)"
    )

    @field_validator("params")
    @classmethod
    def _no_shadowing(cls, value: dict[str, ParamValue]) -> dict[str, ParamValue]:
        clash = sorted(set(value) & set(_OWN_PARAMS))
        if clash:
            raise ValueError(f"set {', '.join(clash)} as backend options, not in 'params'")
        return value


class DeepgramBackend(RemoteBackend):
    name: ClassVar[str] = "deepgram"
    description: ClassVar[str] = "Deepgram pre-recorded speech-to-text (POST /v1/listen), hosted or self-hosted"
    Options = DeepgramOptions
    options: DeepgramOptions

    def __init__(self, options: DeepgramOptions) -> None:
        super().__init__(options)
        self._key = self.keep_secret(read_secret(options.api_key_env, self.name))
        self._url = options.base_url.rstrip("/") + "/v1/listen"

    async def recognise(self, request: AudioRequest, audio: bytes) -> str:
        o = self.options
        params: dict[str, ParamValue] = {
            "model": o.model,
            "language": o.language or request.utterance.language,
            "smart_format": o.smart_format,
            "punctuate": o.punctuate,
            **o.params,
        }
        headers = {"Content-Type": "audio/wav"}
        if self._key:
            headers["Authorization"] = f"Token {self._key}"
        response = await self.send("POST", self._url, params=params, content=audio, headers=headers)
        payload = response_json(response, "is base_url the API root (without /v1)?")
        return json_text(payload, "results", "channels", 0, "alternatives", 0, "transcript")

    def fingerprint(self) -> dict[str, Any]:
        o = self.options
        return {
            "engine": self.name,
            "base_url": o.base_url.rstrip("/"),
            "model": o.model,
            "language": o.language,
            "smart_format": o.smart_format,
            "punctuate": o.punctuate,
            "params": o.params,
        }
