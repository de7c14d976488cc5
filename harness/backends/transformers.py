"""Any Hugging Face speech-recognition model from a local directory, through ``transformers.pipeline``.

``model`` is a directory written by ``save_pretrained`` (or a downloaded hub snapshot): config,
weights, tokenizer and feature extractor. Nothing is fetched: files are read with
``local_files_only``. CTC models (wav2vec2, HuBERT, ...) and sequence-to-sequence models
(Whisper, ...) both work; the pipeline picks the decoding.

The language: ``language`` forces one for every utterance; otherwise a multilingual Whisper model
is told each utterance's manifest language. Other models get no language (CTC models have none);
anything model-specific goes in ``generate_kwargs``.

``batch_size`` clips go through the model together. Padding a batch can change the output of some
models (wav2vec2 without an attention mask), so unlike the faster-whisper backend the batch size
is part of the fingerprint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from harness.backends.base import (
    AudioRequest,
    Backend,
    BackendInfo,
    BackendOptions,
    Capabilities,
    Transcript,
    content_id,
    describe_error,
)
from harness.errors import BackendUnavailable

log = logging.getLogger(__name__)
_EXTRA_HINT = "pip install 'asr-fairness-harness[transformers]'"


class TransformersOptions(BackendOptions):
    model: str = Field(description="local model directory (save_pretrained output or a hub snapshot); required")
    device: Literal["cpu", "cuda", "auto"] = Field("auto", description="where the model runs; auto = cuda if available")
    batch_size: int = Field(1, ge=1, description="clips per forward pass (part of the fingerprint: padding can matter)")
    chunk_length_s: float | None = Field(
        None, gt=0, description="split long audio into chunks of this many seconds (pipeline chunking)"
    )
    generate_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra arguments for generate() of seq2seq models, e.g. {num_beams: 1}"
    )
    language: str | None = Field(
        None, description="force a language (seq2seq models); default: the manifest's, for multilingual Whisper"
    )


class TransformersBackend(Backend):
    name: ClassVar[str] = "transformers"
    description: ClassVar[str] = "Any Hugging Face ASR model from a local directory (transformers pipeline)"
    Options = TransformersOptions
    options: TransformersOptions

    def __init__(self, options: TransformersOptions) -> None:
        super().__init__(options)
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise BackendUnavailable(
                f"backend 'transformers' needs the transformers extra ({exc.name} is missing): {_EXTRA_HINT}"
            ) from None
        directory = Path(options.model).expanduser()
        if not directory.is_dir():
            raise BackendUnavailable(
                f"transformers: option 'model' must be a local model directory; not found: {options.model}"
            )
        self._directory = directory.resolve()
        self._device = _resolve_device(options.device, torch.cuda.is_available())
        try:
            self._pipeline = transformers.pipeline(
                "automatic-speech-recognition",
                model=str(self._directory),
                device=self._device,
                **_offline_kwargs(transformers.__version__),
            )
        except Exception as exc:  # OSError, ValueError, KeyError...: all mean "cannot load"
            raise BackendUnavailable(
                f"transformers cannot load model '{options.model}': {describe_error(exc)}"
            ) from None
        extractor = getattr(self._pipeline, "feature_extractor", None)
        self._sample_rate = int(getattr(extractor, "sampling_rate", None) or 16_000)
        self._whisper_multilingual = _is_multilingual_whisper(self._pipeline)
        self._revision = content_id(self._directory)
        self._versions = {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        }

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return Capabilities(
            sample_rate=self._sample_rate, max_batch_size=self.options.batch_size, detects_language=True
        )

    def _language_for(self, request: AudioRequest) -> str | None:
        if self.options.language:
            return self.options.language
        return request.utterance.language if self._whisper_multilingual else None

    def _call(self, group: Sequence[AudioRequest], language: str | None) -> list[str]:
        generate_kwargs = dict(self.options.generate_kwargs)
        if language is not None:
            generate_kwargs.setdefault("language", language)
        call: dict[str, Any] = {"batch_size": self.options.batch_size}
        if generate_kwargs:
            call["generate_kwargs"] = generate_kwargs
        if self.options.chunk_length_s is not None:
            call["chunk_length_s"] = self.options.chunk_length_s
        # The pipeline pops keys from each input dict, so every call gets fresh ones.
        inputs = [{"raw": r.samples, "sampling_rate": r.sample_rate} for r in group]
        outputs = self._pipeline(inputs, **call)
        if len(outputs) != len(group):
            raise RuntimeError(f"pipeline returned {len(outputs)} results for {len(group)} clips")
        return [str(out["text"]).strip() for out in outputs]

    def transcribe_one(self, request: AudioRequest) -> str:
        if request.samples is None:
            raise ValueError("transformers backend needs audio samples")
        return self._call([request], self._language_for(request))[0]

    def transcribe(self, batch: Sequence[AudioRequest]) -> list[Transcript]:
        if len(batch) < 2:
            return super().transcribe(batch)
        by_language: dict[str | None, list[AudioRequest]] = {}
        for request in batch:
            by_language.setdefault(self._language_for(request), []).append(request)
        done: dict[str, Transcript] = {}
        for language, group in by_language.items():
            begin = time.perf_counter()
            try:
                texts = self._call(group, language)
            except Exception:  # one bad clip must not fail the batch: retry one by one
                log.warning("batched decode failed; retrying %d clips one at a time", len(group), exc_info=True)
                done.update((t.id, t) for t in super().transcribe(group))
                continue
            latency = (time.perf_counter() - begin) / len(group)
            done.update(
                (r.utterance.id, Transcript.ok(r.utterance.id, t, latency)) for r, t in zip(group, texts, strict=True)
            )
        return [done[r.utterance.id] for r in batch]

    def info(self) -> BackendInfo:  # the model is a local directory: its name, identified by content
        return replace(super().info(), model=self._directory.name)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "engine": f"transformers@{self._versions['transformers']}",
            "torch": self._versions["torch"],
            "model_revision": self._revision,
            "device": self._device,  # what "auto" resolved to; GPU and CPU kernels differ
            "options": self.options.model_dump(exclude={"model", "device"}),
        }

    def close(self) -> None:
        self._pipeline = None


def _resolve_device(device: str, cuda_available: bool) -> str:
    if device == "auto":
        return "cuda:0" if cuda_available else "cpu"
    if device == "cuda":
        if not cuda_available:
            raise BackendUnavailable("transformers: device 'cuda' asked for but torch sees no CUDA device")
        return "cuda:0"
    return "cpu"


def _offline_kwargs(transformers_version: str) -> dict[str, Any]:
    """``local_files_only`` for every file the pipeline loads: a pipeline() argument from
    transformers 5, a from_pretrained() argument passed through ``model_kwargs`` before."""
    try:
        major = int(transformers_version.split(".")[0])
    except ValueError:
        major = 5
    if major >= 5:
        return {"local_files_only": True}
    return {"model_kwargs": {"local_files_only": True}}


def _is_multilingual_whisper(pipeline: Any) -> bool:
    if getattr(pipeline, "type", None) != "seq2seq_whisper":
        return False
    generation = getattr(pipeline.model, "generation_config", None)
    return bool(getattr(generation, "is_multilingual", False) or getattr(generation, "lang_to_id", None))
