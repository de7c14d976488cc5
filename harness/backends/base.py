"""The backend interface every ASR engine implements, and the registry that finds them.

A backend receives a batch of :class:`AudioRequest` and returns one :class:`Transcript` per
request, in order. A failure is a value (``status="error"`` with the message), never an empty
transcript: an empty transcript would count as deletions and, if hard accents fail more often,
manufacture disparity.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from harness import redaction
from harness.data.manifest import Utterance
from harness.errors import BackendUnavailable, format_validation_error
from harness.registry import PluginRegistry

ENTRY_POINT_GROUP = "asrfair.backends"
log = logging.getLogger(__name__)


# Fingerprint keys that say which engine and model ran, not how it decoded.
_IDENTITY_KEYS = frozenset(
    {"backend", "engine", "api", "base_url", "endpoint", "region", "project", "location", "model", "model_revision"}
    | {"device", "torch", "models", "sample_rate"}
)


@dataclass(frozen=True)
class BackendInfo:
    """What provenance says of a backend: never an empty model (a service's own choice is named as such)."""

    model: str
    model_revision: str | None
    decoding: dict[str, Any]


def backend_info(fingerprint: dict[str, Any], default_model: str) -> BackendInfo:
    """Model, revision and decoding options out of a fingerprint: its ``options`` block, else every
    key that is not the engine's or model's identity."""
    options = fingerprint.get("options")
    decoding = (
        options
        if isinstance(options, dict)
        else {key: value for key, value in fingerprint.items() if key not in _IDENTITY_KEYS}
    )
    return BackendInfo(str(fingerprint.get("model") or default_model), fingerprint.get("model_revision"), decoding)


class BackendOptions(BaseModel):
    """Base for each backend's options; unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Capabilities:
    """What the runner must know about a backend without branching on its name."""

    sample_rate: int = 16_000
    needs_audio: bool = True
    max_batch_size: int = 1
    detects_language: bool = False  # takes an utterance with language None and detects it
    workers: int = 1  # batches the backend serves at once (local model replicas); the executor keeps them busy


@dataclass(frozen=True)
class AudioRequest:
    utterance: Utterance
    samples: np.ndarray | None  # mono float32 at Capabilities.sample_rate; None if not needed
    sample_rate: int


@dataclass(frozen=True)
class Transcript:
    id: str
    text: str | None
    status: Literal["ok", "error"]
    error: str | None = None
    latency_s: float = 0.0

    @classmethod
    def ok(cls, utt_id: str, text: str, latency_s: float = 0.0) -> Transcript:
        return cls(utt_id, text, "ok", None, latency_s)

    @classmethod
    def failed(cls, utt_id: str, error: str, latency_s: float = 0.0) -> Transcript:
        return cls(utt_id, None, "error", error, latency_s)


ResultCallback = Callable[[Transcript], None]


class StopRequested(Exception):
    """A stop was asked for: no new work starts; everything finished so far is kept."""


class Backend(ABC):
    """Subclass, set ``name``, ``Options`` and ``capabilities``, implement one transcribe method."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    capabilities: ClassVar[Capabilities] = Capabilities()
    default_model: ClassVar[str] = "the service's default model"  # provenance's model when none is configured

    def __init__(self, options: BackendOptions) -> None:
        self.options = options

    def transcribe(self, batch: Sequence[AudioRequest]) -> list[Transcript]:
        """Default: one request at a time; a failure is recorded and the batch goes on."""
        results = []
        for request in batch:
            start = time.perf_counter()
            try:
                text = self.transcribe_one(request)
            except Exception as exc:  # any engine error is data about this utterance
                results.append(
                    Transcript.failed(request.utterance.id, describe_error(exc), time.perf_counter() - start)
                )
            else:
                results.append(Transcript.ok(request.utterance.id, text, time.perf_counter() - start))
        return results

    def transcribe_each(
        self,
        batch: Sequence[AudioRequest],
        on_result: ResultCallback | None = None,
        stop: threading.Event | None = None,
    ) -> list[Transcript]:
        """:meth:`transcribe`, handing transcripts to ``on_result`` as they are made where the backend
        can (the caller keeps the rest from the returned list) and, where it can, stopping early once
        ``stop`` is set (:class:`StopRequested`). Default: the batch in one go, as :meth:`transcribe`."""
        return self.transcribe(batch)

    def transcribe_one(self, request: AudioRequest) -> str:
        raise NotImplementedError(f"{type(self).__name__} implements neither transcribe nor transcribe_one")

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Everything that determines the output: engine, model revision, decoding options."""

    def info(self) -> BackendInfo:
        """Model, revision and decoding options as provenance states them, for every backend alike."""
        return backend_info(self.fingerprint(), self.default_model)

    def fingerprint_id(self) -> str:
        blob = json.dumps(self.fingerprint(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def request_key(self, utt: Utterance, audio_key: str) -> str:
        """What, besides the fingerprint, the output depends on; default: the audio heard."""
        return f"{audio_key}|{utt.language}"

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release models or connections; called once when the run ends."""


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


BUILTIN_BACKENDS: dict[str, str] = {
    "stub": "harness.backends.stub:StubBackend",
    "faster-whisper": "harness.backends.faster_whisper:FasterWhisperBackend",
    "openai-compatible": "harness.backends.openai_compatible:OpenAICompatibleBackend",
    "deepgram": "harness.backends.deepgram:DeepgramBackend",
    "assemblyai": "harness.backends.assemblyai:AssemblyAIBackend",
    "google-speech": "harness.backends.google_speech:GoogleSpeechBackend",
    "azure-speech": "harness.backends.azure_speech:AzureSpeechBackend",
    "aws-transcribe": "harness.backends.aws_transcribe:AWSTranscribeBackend",
    "pocketsphinx": "harness.backends.pocketsphinx:PocketSphinxBackend",
    "transformers": "harness.backends.transformers:TransformersBackend",
}


class Registry(PluginRegistry[Backend]):
    """Backend names to lazily imported ``module:Class`` targets (listing imports no engine)."""

    kind = "backend"
    base = Backend
    error = BackendUnavailable

    @classmethod
    def default(cls) -> Registry:
        """Built-ins plus third-party backends from the ``asrfair.backends`` entry points."""
        return cls.with_entry_points(BUILTIN_BACKENDS, ENTRY_POINT_GROUP)  # type: ignore[return-value]

    def create(self, name: str, options: dict[str, Any] | None = None) -> Backend:
        cls = self.load(name)
        try:
            parsed = cls.Options.model_validate(options or {})
        except ValidationError as exc:
            raise BackendUnavailable(f"backend '{name}': {format_validation_error(exc, model=cls.Options)}") from None
        redaction.keep_options(parsed.model_dump())  # before the backend can quote its key in an error
        return cls(parsed)


_WHOLE_FILE_LIMIT = 16 << 20  # model files up to this size are hashed whole (configs, vocabularies, small LMs)
_HEAD_TAIL = 8 << 20  # bytes read from each end of a larger file (weights)


def content_id(path: Path) -> str:
    """Stable id of a model file or directory for fingerprints: relative names, sizes and bytes
    (large files by their size and both ends), so new weights at the same path are a new model."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        name = file.relative_to(path).as_posix() if path.is_dir() else ""  # a lone file: content only
        if any(part.startswith(".") for part in name.split("/")):  # .cache/, .git/: download bookkeeping
            continue
        size = file.stat().st_size
        digest.update(f"{name}\0{size}\0".encode())
        with file.open("rb") as handle:
            if size <= _WHOLE_FILE_LIMIT:
                digest.update(handle.read())
            else:
                digest.update(handle.read(_HEAD_TAIL))
                handle.seek(size - _HEAD_TAIL)
                digest.update(handle.read(_HEAD_TAIL))
    return digest.hexdigest()[:16]
