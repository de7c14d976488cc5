"""The OpenAI audio transcription protocol: the OpenAI API and the self-hosted servers that speak it.

``POST {base_url}/audio/transcriptions`` with a multipart form (``file``, ``model``,
``response_format=json`` and the optional ``language``, ``prompt``, ``temperature``); the answer
is ``{"text": "..."}``. ``base_url`` is written as for the OpenAI client, ``/v1`` included.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from pydantic import Field

from harness.backends.base import AudioRequest, Capabilities
from harness.backends.remote import (
    RemoteBackend,
    RemoteOptions,
    json_text,
    read_secret,
    response_json,
)


class OpenAICompatibleOptions(RemoteOptions):
    base_url: str = Field("https://api.openai.com/v1", description="API root, /v1 included")
    model: str = Field("whisper-1", description="model name sent with each request")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", description="environment variable holding the key; null for servers without auth"
    )
    language: str | None = Field(None, description="ISO-639-1 code; default: the manifest's per utterance")
    prompt: str | None = Field(None, description="text to guide the model's style or vocabulary")
    temperature: float | None = Field(None, ge=0.0, le=1.0, description="sampling temperature (server default)")


class OpenAICompatibleBackend(RemoteBackend):
    name: ClassVar[str] = "openai-compatible"
    description: ClassVar[str] = "OpenAI /audio/transcriptions over HTTP: the OpenAI API or any server speaking it"
    Options = OpenAICompatibleOptions
    options: OpenAICompatibleOptions

    def __init__(self, options: OpenAICompatibleOptions) -> None:
        super().__init__(options)
        self._key = self.keep_secret(read_secret(options.api_key_env, self.name))
        self._url = options.base_url.rstrip("/") + "/audio/transcriptions"

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return replace(super().capabilities, detects_language=True)  # the API detects an omitted language

    async def recognise(self, request: AudioRequest, audio: bytes) -> str:
        form: dict[str, Any] = {"model": self.options.model, "response_format": "json"}
        language = self.options.language or request.utterance.language
        if language is not None:  # omitted: the server detects it
            form["language"] = language
        if self.options.prompt is not None:
            form["prompt"] = self.options.prompt
        if self.options.temperature is not None:
            form["temperature"] = str(self.options.temperature)
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        response = await self.send(
            "POST",
            self._url,
            data=form,
            files={"file": (f"{request.utterance.id}.wav", audio, "audio/wav")},
            headers=headers,
        )
        return json_text(response_json(response, "is base_url the API root (ending in /v1)?"), "text")

    def fingerprint(self) -> dict[str, Any]:
        o = self.options
        return {
            "engine": self.name,
            "base_url": o.base_url.rstrip("/"),
            "model": o.model,
            "language": o.language,
            "prompt": o.prompt,
            "temperature": o.temperature,
        }
