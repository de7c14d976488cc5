"""AssemblyAI pre-recorded transcription: upload, submit a job, poll it, then delete it.

1. ``POST {base_url}/v2/upload`` with the raw WAV -> ``{"upload_url": ...}``
2. ``POST {base_url}/v2/transcript`` with ``{"audio_url", "language_code", "punctuate", "format_text",
   "speech_models"?}`` -> ``{"id", "status"}``
3. ``GET {base_url}/v2/transcript/{id}`` until ``status`` is ``completed`` (``text``) or ``error``
   (``error``: the utterance fails with that message; a failed job is not resubmitted)
4. unless ``keep: true``, ``DELETE {base_url}/v2/transcript/{id}``: AssemblyAI then removes the
   transcript text at once and the uploaded audio on its own schedule.

Every request carries the key as the bare ``authorization`` header value (no scheme).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from harness.backends.base import AudioRequest, BackendInfo, StopRequested
from harness.backends.remote import (
    Poll,
    RemoteBackend,
    RemoteError,
    RemoteOptions,
    json_field,
    read_secret,
    response_json,
)

log = logging.getLogger(__name__)
_HINT = "is base_url the API root?"  # when an answer is not JSON
_OWN_FIELDS = ("audio_url", "language_code", "punctuate", "format_text", "speech_models", "speech_model")


class AssemblyAIOptions(RemoteOptions):
    base_url: str = Field("https://api.assemblyai.com", description="API root (https://api.eu.assemblyai.com: EU)")
    api_key_env: str = Field("ASSEMBLYAI_API_KEY", description="environment variable holding the key")
    speech_models: list[str] | None = Field(
        None,
        min_length=1,
        description="models in priority order, e.g. [universal-2]; default: AssemblyAI's current default "
        "(which changes over time; pin it for reproducible runs)",
    )
    language_code: str | None = Field(
        None, description="language code such as en or en_us; default: the manifest's per utterance"
    )
    punctuate: bool = Field(False, description="add punctuation")
    format_text: bool = Field(False, description="casing and inverse text normalisation (numerals)")
    keep: bool = Field(False, description="keep transcripts on AssemblyAI instead of deleting each after reading it")
    params: dict[str, Any] = Field(
        default_factory=dict, description="further fields of the transcript request, sent as given"
    )
    poll_initial: float = Field(1.0, gt=0, description="seconds before the second status check (grows 1.5x)")
    poll_max: float = Field(10.0, gt=0, description="longest wait between status checks")
    poll_deadline: float = Field(900.0, gt=0, description="seconds of polling before an utterance is given up")

    @field_validator("speech_models", mode="before")
    @classmethod
    def _one_model(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("params")
    @classmethod
    def _no_shadowing(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(set(value) & set(_OWN_FIELDS))
        if clash:
            raise ValueError(f"{', '.join(clash)}: set as backend options (speech_models), not in 'params'")
        return value

    @model_validator(mode="after")
    def _poll_order(self) -> AssemblyAIOptions:
        if self.poll_max < self.poll_initial:
            raise ValueError("poll_max must be at least poll_initial")
        return self


class AssemblyAIBackend(RemoteBackend):
    name: ClassVar[str] = "assemblyai"
    description: ClassVar[str] = "AssemblyAI pre-recorded speech-to-text (upload, transcript job, poll, delete)"
    Options = AssemblyAIOptions
    options: AssemblyAIOptions

    def __init__(self, options: AssemblyAIOptions) -> None:
        super().__init__(options)
        self._key = self.keep_secret(read_secret(options.api_key_env, self.name)) or ""
        self._root = options.base_url.rstrip("/")
        self._schedule = Poll(
            initial=options.poll_initial, factor=1.5, maximum=options.poll_max, deadline=options.poll_deadline
        )

    @property
    def _headers(self) -> dict[str, str]:
        return {"authorization": self._key}

    async def recognise(self, request: AudioRequest, audio: bytes) -> str:
        upload = await self.send(
            "POST",
            f"{self._root}/v2/upload",
            content=audio,
            headers={**self._headers, "Content-Type": "application/octet-stream"},
        )
        audio_url = json_field(response_json(upload, _HINT), "upload_url")
        o = self.options
        body: dict[str, Any] = {
            "audio_url": audio_url,
            "language_code": o.language_code or request.utterance.language,
            "punctuate": o.punctuate,
            "format_text": o.format_text,
            **o.params,
        }
        if o.speech_models is not None:
            body["speech_models"] = o.speech_models
        submitted = await self.send("POST", f"{self._root}/v2/transcript", json=body, headers=self._headers)
        job_id = json_field(response_json(submitted, _HINT), "id")
        job_url = f"{self._root}/v2/transcript/{job_id}"
        finished = False

        async def check() -> str | None:
            nonlocal finished
            job = response_json(await self.send("GET", job_url, headers=self._headers), _HINT)
            status = json_field(job, "status")
            if status == "completed":
                finished = True
                text = job.get("text")
                # No field proves silence: null or empty text is an unusable answer (retried, then failed).
                return text if isinstance(text, str) else ""
            if status == "error":
                finished = True
                raise RemoteError(f"transcription failed: {job.get('error') or 'no reason given'}")
            if status not in ("queued", "processing"):
                raise RemoteError(f"unexpected response: status '{status}'")
            return None

        try:
            return await self.poll(check, self._schedule)
        finally:
            if finished and not o.keep:
                await self._delete(job_url, job_id)

    async def _delete(self, job_url: str, job_id: str) -> None:
        """Remove the transcript; a failure is logged, not charged to the utterance (its text is good)."""
        try:
            await self.send("DELETE", job_url, headers=self._headers)
        except (RemoteError, StopRequested) as exc:  # after a stop the DELETE is tried once, not retried
            log.warning(
                "assemblyai: could not delete transcript %s (%s); delete it by hand", job_id, self.redact(str(exc))
            )

    def info(self) -> BackendInfo:
        models = self.options.speech_models
        return replace(super().info(), model=", ".join(models)) if models else super().info()

    def fingerprint(self) -> dict[str, Any]:
        o = self.options
        return {
            "engine": self.name,
            "base_url": self._root,
            "speech_models": o.speech_models,
            "language_code": o.language_code,
            "punctuate": o.punctuate,
            "format_text": o.format_text,
            "params": o.params,
        }
