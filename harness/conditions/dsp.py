"""The signal processing behind each transform: pure functions of float32 mono samples.

Randomness comes only from the ``numpy.random.Generator`` passed in, so a transform is
reproducible from its seed. Filters come from audiomentations (deterministic once their
parameter ranges collapse to one value); its noise transforms draw from the process-wide
NumPy/`random` state, which cannot be seeded per utterance without global state, so noise,
tone, reverberation and the phone line are written here on numpy/scipy/soxr, and the codec
round trip uses LAME and libopus through PyAV's bundled FFmpeg (faster than libsndfile's
encoders, whose opus effort cannot be lowered, and gapless: no codec delay to trim by hand).
"""

from __future__ import annotations

import io

import numpy as np
import soxr

TELEPHONE_RATE = 8_000
_COLOR_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ∝ 1 / f^exponent
_ROLLOFF_DB_PER_OCTAVE = 24


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean`` plus ``noise`` scaled so that power(clean) / power(added) = ``snr_db``.

    Power is measured over the whole clip, pauses included (as audiomentations and most
    augmentation papers do). A silent clip has no SNR; it is returned unchanged.
    """
    signal_rms, noise_rms = rms(clean), rms(noise)
    if signal_rms == 0.0 or noise_rms == 0.0:
        return clean
    scale = signal_rms / (noise_rms * 10 ** (snr_db / 20))
    return (clean + scale * noise[: clean.size]).astype(np.float32)


def colored_noise(rng: np.random.Generator, size: int, color: str) -> np.ndarray:
    """Gaussian noise shaped in the frequency domain to a 1/f^exponent power spectrum."""
    white = rng.standard_normal(size)
    exponent = _COLOR_EXPONENT[color]
    if exponent == 0.0 or size < 2:
        return white.astype(np.float32)
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(size)
    freqs[0] = freqs[1]  # no infinite DC gain
    shaped = np.fft.irfft(spectrum / freqs ** (exponent / 2), n=size)
    return (shaped / rms(shaped)).astype(np.float32)


def sine(size: int, sample_rate: int, freq_hz: float, phase: float) -> np.ndarray:
    t = np.arange(size) / sample_rate
    return np.sin(2 * np.pi * freq_hz * t + phase).astype(np.float32)


def fit_length(noise: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` samples of ``noise`` from a random start, looping when it is shorter."""
    if noise.size == 0:
        return np.zeros(size, dtype=np.float32)
    start = int(rng.integers(noise.size))
    reps = -(-(start + size) // noise.size)
    return np.tile(noise, reps)[start : start + size]


def bandpass(samples: np.ndarray, sample_rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    from audiomentations import BandPassFilter  # deferred: only runs that filter pay its import

    center = (low_hz + high_hz) / 2  # audiomentations puts the -3 dB points at center ± bandwidth / 2
    fraction = (high_hz - low_hz) / center
    return _fixed(BandPassFilter, samples, sample_rate, center_freq=center, bandwidth_fraction=fraction)


def lowpass(samples: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    from audiomentations import LowPassFilter

    return _fixed(LowPassFilter, samples, sample_rate, cutoff_freq=cutoff_hz)


def highpass(samples: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    from audiomentations import HighPassFilter

    return _fixed(HighPassFilter, samples, sample_rate, cutoff_freq=cutoff_hz)


def _fixed(kind: type, samples: np.ndarray, sample_rate: int, **values: float) -> np.ndarray:
    """An audiomentations filter with every random ``min_``/``max_`` range collapsed to one value
    (and a 24 dB/octave roll-off), so it is deterministic."""
    ranges = {f"{bound}_{name}": value for name, value in values.items() for bound in ("min", "max")}
    rolloff = {"min_rolloff": _ROLLOFF_DB_PER_OCTAVE, "max_rolloff": _ROLLOFF_DB_PER_OCTAVE}
    return kind(**ranges, **rolloff, p=1.0)(samples.astype(np.float32), sample_rate)


def gain(samples: np.ndarray, db: float) -> np.ndarray:
    return (samples * 10 ** (db / 20)).astype(np.float32)


def clip(samples: np.ndarray, percentile: float) -> np.ndarray:
    """Hard clipping at the ``percentile`` of |amplitude|.

    audiomentations' ClippingDistortion takes a whole-number percentage of clipped samples;
    a level at a percentile of |x| is one numpy call and allows 99.5.
    """
    if samples.size == 0:
        return samples
    level = float(np.percentile(np.abs(samples), percentile))
    return np.clip(samples, -level, level).astype(np.float32)


def telephone(samples: np.ndarray, sample_rate: int, low_hz: float, high_hz: float, mu_law: bool) -> np.ndarray:
    """8 kHz narrow band, band-passed like a phone line, optionally 8-bit mu-law (G.711)."""
    from scipy import signal  # deferred: importing scipy.signal costs a second and most runs render nothing

    narrow = soxr.resample(samples.astype(np.float32), sample_rate, TELEPHONE_RATE, quality="HQ")
    sos = signal.butter(4, [low_hz, high_hz], btype="bandpass", fs=TELEPHONE_RATE, output="sos")
    narrow = signal.sosfilt(sos, narrow)
    if mu_law:
        narrow = _mu_law_round_trip(narrow)
    wide = soxr.resample(narrow.astype(np.float32), TELEPHONE_RATE, sample_rate, quality="HQ")
    return _same_length(wide, samples.size)


def _mu_law_round_trip(samples: np.ndarray, mu: int = 255) -> np.ndarray:
    """Companding to 8 bits and back: quantisation noise that is larger on loud samples."""
    peak = max(float(np.max(np.abs(samples))), 1e-9) if samples.size else 1.0
    scaled = np.clip(samples / peak, -1.0, 1.0)
    encoded = np.sign(scaled) * np.log1p(mu * np.abs(scaled)) / np.log1p(mu)
    quantised = np.round((encoded + 1) / 2 * mu) / mu * 2 - 1
    decoded = np.sign(quantised) * np.expm1(np.abs(quantised) * np.log1p(mu)) / mu
    return decoded * peak


def reverb(samples: np.ndarray, sample_rate: int, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """Convolution with a synthetic room: a direct path plus exponentially decaying diffuse noise
    that falls 60 dB in ``rt60_s``; the output keeps the input's level and length."""
    from scipy import signal  # deferred: see telephone

    length = max(1, int(rt60_s * sample_rate))
    t = np.arange(length) / sample_rate
    response = rng.standard_normal(length) * np.exp(-np.log(1000.0) * t / rt60_s)
    response[0] = 1.0
    wet = signal.fftconvolve(samples.astype(np.float64), response)[: samples.size]
    level = rms(samples)
    return (wet * (level / rms(wet)) if rms(wet) > 0 else wet).astype(np.float32)


class CodecUnavailable(RuntimeError):
    """This machine's codec library cannot encode the format."""


# FFmpeg encoder and container per format, with the sample rates each encoder accepts.
_CODECS = {
    "mp3": ("libmp3lame", "mp3", (8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)),
    "opus": ("libopus", "ogg", (8_000, 12_000, 16_000, 24_000, 48_000)),
}


def codec(samples: np.ndarray, sample_rate: int, fmt: str, bitrate_kbps: float) -> np.ndarray:
    """Encode and decode in memory; same length and timing as the input (the container's gapless
    metadata removes the codec delay)."""
    import av  # deferred: only runs with a codec condition pay its import

    decoded: list[np.ndarray] = []
    with av.open(io.BytesIO(encode(samples, sample_rate, fmt, bitrate_kbps)), "r") as source:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in source.decode(audio=0):
            decoded += [f.to_ndarray()[0] for f in resampler.resample(frame)]
        decoded += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return _same_length(np.concatenate(decoded) if decoded else np.zeros(0, np.float32), samples.size)


def encode(samples: np.ndarray, sample_rate: int, fmt: str, bitrate_kbps: float) -> bytes:
    """The compressed file ``codec`` decodes: mp3 (LAME) or Ogg Opus (libopus), constant target
    bitrate, through PyAV's bundled FFmpeg."""
    import av

    encoder, container, rates = _CODECS[fmt]
    if encoder not in av.codecs_available:
        raise CodecUnavailable(f"this FFmpeg (PyAV {av.__version__}) has no {encoder} encoder for {fmt}")
    rate = sample_rate if sample_rate in rates else max(rates)  # the encoder resamples
    buffer = io.BytesIO()
    try:
        with av.open(buffer, "w", format=container) as sink:
            stream = sink.add_stream(encoder, rate=rate, layout="mono")
            stream.bit_rate = int(bitrate_kbps * 1000)
            frame = av.AudioFrame.from_ndarray(samples.astype(np.float32)[None, :], format="flt", layout="mono")
            frame.sample_rate = sample_rate
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                sink.mux(packet)
    except av.error.FFmpegError as exc:  # the encoder exists but refuses these parameters
        raise ValueError(f"{encoder} cannot encode {fmt} at {bitrate_kbps:g} kbps: {exc}") from exc
    return buffer.getvalue()


def _same_length(samples: np.ndarray, size: int) -> np.ndarray:
    if samples.size >= size:
        return samples[:size].astype(np.float32)
    return np.pad(samples, (0, size - samples.size)).astype(np.float32)
