"""Audio loading: decode, downmix, resample to 16 kHz, cut segments, hash for caching."""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from harness.data.manifest import Utterance

SAMPLE_RATE = 16_000
log = logging.getLogger(__name__)


class AudioError(Exception):
    """The file could not be decoded; recorded against the utterance, the run goes on."""


def load_audio(utt: Utterance, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples of the utterance's segment at ``sample_rate``."""
    try:
        samples, native_rate = _read_soundfile(utt)
    except (sf.LibsndfileError, RuntimeError):
        samples, native_rate = _read_librosa(utt)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if not np.isfinite(samples).all():  # a float file holding NaN/inf: the resampler and models reject it
        raise AudioError(f"{utt.audio} holds NaN or infinite samples; re-export the audio")
    if native_rate != sample_rate:
        samples = resample(samples, native_rate, sample_rate)
    return np.ascontiguousarray(samples, dtype=np.float32)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """soxr at high quality, cut or zero-padded to ceil(n × ratio): exactly what
    ``librosa.resample(res_type="soxr_hq")`` returns, without importing librosa (and with it numba
    and scipy.signal: ~220 MiB and a second of CPU in every process that resamples)."""
    out = soxr.resample(samples, from_rate, to_rate, quality="soxr_hq")
    size = int(np.ceil(samples.shape[0] * (float(to_rate) / from_rate)))
    if out.shape[0] < size:
        out = np.pad(out, (0, size - out.shape[0]))
    return out[:size]


def load_file(path: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A whole file (a noise recording, say) as mono float32 at ``sample_rate``."""
    return load_audio(Utterance(id=path.name, audio=path, text=""), sample_rate)


def _read_soundfile(utt: Utterance) -> tuple[np.ndarray, int]:
    with sf.SoundFile(str(utt.audio)) as handle:
        rate = handle.samplerate
        start = round(utt.offset * rate)
        frames = -1 if utt.duration is None else round(utt.duration * rate)
        handle.seek(start)
        return handle.read(frames, dtype="float32", always_2d=False), rate


def _read_librosa(utt: Utterance) -> tuple[np.ndarray, int]:
    import librosa

    try:
        with warnings.catch_warnings():  # librosa's audioread fallback warns on every call
            warnings.simplefilter("ignore")
            samples, rate = librosa.load(str(utt.audio), sr=None, mono=True, offset=utt.offset, duration=utt.duration)
    except Exception as exc:  # audioread raises many unrelated types
        raise AudioError(f"cannot decode {utt.audio}: {exc}") from exc
    return samples, int(rate)


def probe_duration(path: Path) -> float | None:
    """Duration in seconds via librosa's fallback decoders, or None when undecodable."""
    import librosa

    try:
        with warnings.catch_warnings():  # librosa's audioread fallback warns on every call
            warnings.simplefilter("ignore")
            return float(librosa.get_duration(path=str(path)))
    except Exception:  # audioread raises many unrelated types; None means "unreadable"
        return None


def clip_seconds(utt: Utterance, file_seconds: float | None = None) -> float | None:
    """The clip's length: the manifest's ``duration``, else the file's header (``file_seconds``
    when already read: frames / sample rate) less the offset (None when unreadable; no decoding,
    so it is cheap enough for every utterance of a run)."""
    if utt.duration is not None:
        return utt.duration
    if file_seconds is None:
        try:
            info = sf.info(str(utt.audio))
        except (sf.LibsndfileError, RuntimeError, OSError):
            return None
        if not info.samplerate:
            return None
        file_seconds = info.frames / info.samplerate
    return max(file_seconds - utt.offset, 0.0)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def segment_key(file_digest: str, utt: Utterance) -> str:
    """Content key of what the backend hears: file bytes plus the segment bounds."""
    return hashlib.sha256(f"{file_digest}|{utt.offset:.6f}|{utt.duration}".encode()).hexdigest()
