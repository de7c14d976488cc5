"""CMU PocketSphinx 5.x: a small, fully offline HMM/n-gram recogniser.

The ``pocketsphinx`` wheel ships a US English acoustic model, the CMU pronouncing dictionary and
a trigram language model; they are the defaults, so nothing is downloaded. ``hmm``, ``dictionary``
and ``lm`` point at other model files (another language, an adapted acoustic model, a domain LM).

One decoder per backend instance. PocketSphinx carries state from one utterance to the next (the
live cepstral mean and the acoustic model's Gaussian selection), so the text of a clip would
depend on which clip came before it; the feature front end is reset before every utterance
(microseconds) and the whole clip is given as one block with ``full_utt``, which makes each
transcript a function of its own audio only: the same in any order, batch or rerun.
"""

from __future__ import annotations

import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from harness.backends.base import AudioRequest, Backend, BackendOptions, Capabilities, content_id
from harness.errors import BackendUnavailable

SAMPLE_RATE = 16_000


class PocketSphinxOptions(BackendOptions):
    hmm: str | None = Field(None, description="acoustic model directory; default: the bundled en-US model")
    dictionary: str | None = Field(None, description="pronunciation dictionary; default: the bundled CMUdict")
    lm: str | None = Field(None, description="n-gram language model (.lm.bin/.arpa); default: the bundled en-US LM")
    language: str = Field(
        "en", description="language of the model; utterances in another language fail instead of being decoded"
    )
    beam: float | None = Field(None, gt=0, lt=1, description="Viterbi beam (smaller = wider); default 1e-48")
    wbeam: float | None = Field(None, gt=0, lt=1, description="word-exit beam (smaller = wider); default 7e-29")
    lw: float | None = Field(None, gt=0, description="language-model weight; default 6.5")


class PocketSphinxBackend(Backend):
    name: ClassVar[str] = "pocketsphinx"
    description: ClassVar[str] = "CMU PocketSphinx 5 (offline; the bundled en-US model ships with the wheel)"
    default_model: ClassVar[str] = "the bundled en-us acoustic model, dictionary and language model"
    Options = PocketSphinxOptions
    capabilities: ClassVar[Capabilities] = Capabilities(sample_rate=SAMPLE_RATE, max_batch_size=1)
    options: PocketSphinxOptions

    def __init__(self, options: PocketSphinxOptions) -> None:
        super().__init__(options)
        try:
            import pocketsphinx
        except ImportError:
            raise BackendUnavailable(
                "backend 'pocketsphinx' needs the pocketsphinx extra: pip install 'asr-fairness-harness[pocketsphinx]'"
            ) from None
        self._models = {
            "hmm": _model_path("hmm", options.hmm, pocketsphinx.get_model_path("en-us/en-us"), want_dir=True),
            "dict": _model_path(
                "dictionary", options.dictionary, pocketsphinx.get_model_path("en-us/cmudict-en-us.dict")
            ),
            "lm": _model_path("lm", options.lm, pocketsphinx.get_model_path("en-us/en-us.lm.bin")),
        }
        settings: dict[str, Any] = {key: str(path) for key, path in self._models.items()}
        settings.update({k: v for k, v in options.model_dump(include={"beam", "wbeam", "lw"}).items() if v is not None})
        try:
            config = pocketsphinx.Config(samprate=SAMPLE_RATE, loglevel="ERROR", **settings)
            self._decoder = pocketsphinx.Decoder(config)
        except Exception as exc:  # the C library reports bad model files as RuntimeError/ValueError
            given = ", ".join(
                f"{k}={v}" for k, v in options.model_dump(include={"hmm", "dictionary", "lm"}).items() if v
            )
            raise BackendUnavailable(
                f"pocketsphinx cannot load its model ({given or 'bundled en-US'}): {_first_line(exc)}; "
                "the library's ERROR line above names the bad file"
            ) from None
        self._lock = threading.Lock()
        self._language = _primary(options.language)
        self._model_ids = {key: content_id(path) for key, path in self._models.items()}

    def transcribe_one(self, request: AudioRequest) -> str:
        language = _primary(request.utterance.language)
        if language != self._language:
            raise ValueError(
                f"pocketsphinx model is '{self.options.language}', utterance is '{request.utterance.language}'; "
                "give a model for that language (hmm/dictionary/lm and language options) or leave the utterance out"
            )
        if request.samples is None:
            raise ValueError("pocketsphinx needs audio samples")
        if request.sample_rate != SAMPLE_RATE:
            raise ValueError(f"pocketsphinx needs {SAMPLE_RATE} Hz audio, got {request.sample_rate} Hz")
        pcm = (np.clip(request.samples, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()
        with self._lock:
            decoder = self._decoder
            decoder.reinit_feat()  # forget the previous utterance's cepstral mean and Gaussian selection
            decoder.start_utt()
            decoder.process_raw(pcm, False, True)  # whole clip at once: full-utterance normalisation
            decoder.end_utt()
            hypothesis = decoder.hyp()
        return hypothesis.hypstr.strip() if hypothesis is not None else ""

    def fingerprint(self) -> dict[str, Any]:
        # Model files are identified by content, not path, so a moved venv keeps its cache.
        return {
            "backend": self.name,
            "engine": f"pocketsphinx@{_package_version('pocketsphinx')}",
            "models": self._model_ids,
            "sample_rate": SAMPLE_RATE,
            "options": self.options.model_dump(exclude={"hmm", "dictionary", "lm"}),
        }

    def close(self) -> None:
        self._decoder = None  # type: ignore[assignment]


def _model_path(option: str, given: str | None, bundled: str, *, want_dir: bool = False) -> Path:
    path = Path(given).expanduser() if given is not None else Path(bundled)
    ok = path.is_dir() if want_dir else path.is_file()
    if not ok:
        kind = "directory" if want_dir else "file"
        where = f"option '{option}'" if given is not None else f"the bundled {option} (reinstall pocketsphinx)"
        raise BackendUnavailable(f"pocketsphinx: {where}: model {kind} not found: {path}")
    return path.resolve()


def _primary(language: str) -> str:
    """'en-US', 'en_gb', 'EN' -> 'en'."""
    return language.replace("_", "-").split("-")[0].strip().lower()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
