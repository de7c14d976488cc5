"""Listening conditions: each transform measured on synthetic audio, through Simulator.render.

Signals are made here with numpy (a voiced, speech-like signal with an envelope and pauses, or
white noise for filter responses); files for noise recordings and babble talkers are written to
``tmp_path``. Nothing touches the network or a model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError
from scipy import signal

from harness.conditions import Condition, Simulator, dsp
from harness.data.manifest import Utterance

SR = 16_000


# --- signals and measurements ---------------------------------------------------------------


def speech_like(seconds: float = 3.0, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """Harmonics of a wavering f0 with 1/k amplitudes, a syllable-rate envelope and two pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))) / SR
    voiced = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 16))
    envelope = np.sqrt(np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None))
    for start in (0.25 * seconds, 0.65 * seconds):
        envelope[int(start * SR) : int((start + 0.3) * SR)] = 0.0
    wave = voiced * envelope
    return (0.3 * wave / np.max(np.abs(wave))).astype(np.float32)


def white_noise(seconds: float = 4.0, seed: int = 1) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def snr_db(clean: np.ndarray, out: np.ndarray) -> float:
    x, y = clean.astype(np.float64), out.astype(np.float64)
    return float(10 * np.log10(np.sum(x**2) / np.sum((y - x) ** 2)))


def welch(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return signal.welch(x.astype(np.float64), SR, nperseg=1024)


def response_db(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Power transfer (dB) of a linear transform, from white noise in and out."""
    freqs, p_in = welch(x)
    _, p_out = welch(y)
    return freqs, 10 * np.log10(p_out / p_in)


def at(freqs: np.ndarray, values: np.ndarray, hz: float) -> float:
    return float(np.interp(hz, freqs, values))


def band_energy_db(x: np.ndarray, y: np.ndarray, band: np.ndarray | slice) -> float:
    """Energy of ``y`` relative to ``x`` in the Welch bins ``band`` selects."""
    freqs, p_in = welch(x)
    _, p_out = welch(y)
    mask = band(freqs) if callable(band) else band
    return float(10 * np.log10(p_out[mask].sum() / p_in[mask].sum()))


def aligned(reference: np.ndarray, out: np.ndarray) -> tuple[int, np.ndarray]:
    """Lag of ``out`` behind ``reference`` (cross-correlation peak) and ``out`` shifted back by it."""
    corr = signal.correlate(out.astype(np.float64), reference.astype(np.float64), mode="full", method="fft")
    lag = int(np.argmax(corr)) - (reference.size - 1)
    return lag, np.roll(out, -lag)


def cond(*transforms: dict, name: str = "c") -> Condition:
    return Condition.model_validate({"name": name, "transforms": list(transforms)})


def utt(uid: str = "u1", speaker: str | None = "spk-a", audio: Path | None = None) -> Utterance:
    return Utterance(id=uid, audio=audio or Path(f"/nonexistent/{uid}.wav"), text="x", speaker=speaker)


def render(condition: Condition, samples: np.ndarray, u: Utterance | None = None, pool=(), seed: int = 7):
    return Simulator(list(pool), seed=seed, sample_rate=SR).render(condition, u or utt(), samples, SR)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return speech_like()


@pytest.fixture(scope="module")
def noise_in() -> np.ndarray:
    return white_noise()


@pytest.fixture
def noise_file(tmp_path: Path) -> Path:
    """1.3 s of recorded-like noise (low-passed white), shorter than the clips so it must loop."""
    raw = np.random.default_rng(5).standard_normal(int(1.3 * SR))
    shaped = signal.sosfilt(signal.butter(2, 2500, fs=SR, output="sos"), raw)
    path = tmp_path / "hum.wav"
    sf.write(path, (0.2 * shaped / np.max(np.abs(shaped))).astype(np.float32), SR, subtype="FLOAT")
    return path


def write_clip(path: Path, samples: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, SR, subtype="FLOAT")
    return path


def tone_clip(freq_hz: float, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.2 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


# --- additive transforms: SNR ------------------------------------------------------------


@pytest.mark.parametrize("target", [0.0, 10.0, 20.0])
@pytest.mark.parametrize(
    "transform",
    [
        {"type": "noise", "color": "white"},
        {"type": "noise", "color": "pink"},
        {"type": "noise", "color": "brown"},
        {"type": "noise"},  # no colour, no file: white
        {"type": "tone", "freq_hz": 1000.0},
        {"type": "tone", "freq_hz": 437.3},
    ],
    ids=["white", "pink", "brown", "default", "tone1k", "tone437"],
)
def test_generated_noise_and_tone_hit_the_target_snr(x, transform, target):
    out = render(cond({**transform, "snr_db": target}), x)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert snr_db(x, out) == pytest.approx(target, abs=0.5)


@pytest.mark.parametrize("target", [0.0, 10.0, 20.0])
def test_noise_from_a_file_hits_the_target_snr_and_loops_the_recording(x, noise_file, target):
    out = render(cond({"type": "noise", "file": str(noise_file), "snr_db": target}), x)
    assert snr_db(x, out) == pytest.approx(target, abs=0.5)
    added = out.astype(np.float64) - x
    period = sf.info(noise_file).frames
    assert added.size > period  # the 1.3 s recording is looped over the 3 s clip
    np.testing.assert_allclose(added[period:], added[:-period], atol=1e-6)
    # what is added is the recording itself (up to scale), from some start
    recording = sf.read(noise_file, dtype="float64")[0]
    corr = signal.correlate(np.tile(recording, 2), added[:period], mode="valid")
    best = int(np.argmax(corr[:period]))
    segment = np.tile(recording, 2)[best : best + period]
    assert np.corrcoef(segment, added[:period])[0, 1] > 0.999


@pytest.fixture
def babble_pool(tmp_path: Path) -> list[Utterance]:
    """Speaker A (the target) has several clips; B, C, D one each. Each clip is a distinct tone
    so that the added babble reveals which clips were mixed in."""
    pool = []
    for i, freq in enumerate([300.0, 350.0, 400.0, 450.0, 500.0]):
        pool.append(utt(f"a-{i}", "A", write_clip(tmp_path / f"a-{i}.wav", tone_clip(freq))))
    for name, freq in [("B", 700.0), ("C", 900.0), ("D", 1100.0)]:
        pool.append(utt(f"{name.lower()}-0", name, write_clip(tmp_path / f"{name}.wav", tone_clip(freq, 1.1))))
    return pool


def tone_power(samples: np.ndarray, freq_hz: float) -> float:
    """Share of the signal's power within ±20 Hz of ``freq_hz`` (Hann-windowed FFT)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size))) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / SR)
    return float(spectrum[np.abs(freqs - freq_hz) <= 20].sum() / spectrum.sum())


@pytest.mark.parametrize("target", [0.0, 10.0, 20.0])
def test_babble_hits_the_target_snr(x, babble_pool, target):
    out = render(cond({"type": "babble", "talkers": 3, "snr_db": target}), x, babble_pool[0], babble_pool)
    assert snr_db(x, out) == pytest.approx(target, abs=0.5)


@pytest.mark.parametrize("target_index", range(5))
def test_babble_talkers_are_other_speakers(x, babble_pool, target_index):
    target = babble_pool[target_index]
    out = render(cond({"type": "babble", "talkers": 3, "snr_db": 0.0}), x, target, babble_pool)
    added = out.astype(np.float64) - x
    for other in (700.0, 900.0, 1100.0):  # all three other speakers talk...
        assert tone_power(added, other) > 0.2
    for own in (300.0, 350.0, 400.0, 450.0, 500.0):  # ...and none of the target speaker's own clips
        assert tone_power(added, own) < 1e-3


def test_babble_falls_back_to_other_clips_when_nobody_else_speaks(x, babble_pool):
    only_a = babble_pool[:5]
    target = only_a[2]  # its clip is the 400 Hz tone
    out = render(cond({"type": "babble", "talkers": 4, "snr_db": 5.0}), x, target, only_a)
    added = out.astype(np.float64) - x
    assert snr_db(x, out) == pytest.approx(5.0, abs=0.5)
    assert tone_power(added, 400.0) < 1e-3
    assert sum(tone_power(added, f) for f in (300.0, 350.0, 450.0, 500.0)) > 0.9


@pytest.mark.parametrize("freq_hz", [60.0, 1000.0, 3137.0])
def test_tone_energy_sits_at_its_frequency(x, freq_hz):
    out = render(cond({"type": "tone", "freq_hz": freq_hz, "snr_db": 10.0}), x)
    added = out.astype(np.float64) - x
    spectrum = np.abs(np.fft.rfft(added * np.hanning(added.size))) ** 2
    bin_hz = SR / added.size
    peak = int(np.argmax(spectrum))
    assert abs(peak * bin_hz - freq_hz) <= bin_hz
    assert spectrum[max(peak - 3, 0) : peak + 4].sum() / spectrum.sum() > 0.99


@pytest.mark.parametrize(("color", "slope"), [("white", 0.0), ("pink", -3.01), ("brown", -6.02)])
def test_noise_colour_has_its_spectral_slope(x, color, slope):
    out = render(cond({"type": "noise", "color": color, "snr_db": 0.0}), x)
    freqs, power = welch(out.astype(np.float64) - x)
    band = (freqs >= 60) & (freqs <= 6000)
    fitted = np.polyfit(np.log2(freqs[band]), 10 * np.log10(power[band]), 1)[0]  # dB per octave
    assert fitted == pytest.approx(slope, abs=1.0)


# --- filters ------------------------------------------------------------------------------


def test_telephone_is_band_limited_and_keeps_length(noise_in):
    out = render(cond({"type": "telephone"}), noise_in)  # 300–3400 Hz, 8 kHz, mu-law
    assert out.shape == noise_in.shape and out.dtype == np.float32
    assert band_energy_db(noise_in, out, lambda f: f >= 4000) <= -40
    assert band_energy_db(noise_in, out, lambda f: (f > 0) & (f <= 150)) <= -20
    freqs, gain = response_db(noise_in, out)
    assert at(freqs, gain, 1000) == pytest.approx(0.0, abs=1.0)  # the voice band passes


@pytest.mark.parametrize("mu_law", [True, False])
def test_telephone_mu_law_only_adds_quantisation_noise(x, mu_law):
    out = render(cond({"type": "telephone", "mu_law": mu_law}), x)
    clean = render(cond({"type": "telephone", "mu_law": False}), x)
    if mu_law:
        assert 20 < snr_db(clean, out) < 50  # 8-bit companding: audible, far from destructive
    else:
        assert np.array_equal(out, clean)


@pytest.mark.parametrize(
    ("transform", "cutoffs", "octave_out"),
    [
        ({"type": "lowpass", "cutoff_hz": 2000.0}, [2000.0], [4000.0]),
        ({"type": "highpass", "cutoff_hz": 1000.0}, [1000.0], [500.0]),
        ({"type": "bandpass", "low_hz": 500.0, "high_hz": 2000.0}, [500.0, 2000.0], [250.0, 4000.0]),
        ({"type": "bandpass", "low_hz": 200.0, "high_hz": 6000.0}, [200.0, 6000.0], [100.0]),
    ],
    ids=["lowpass", "highpass", "bandpass", "cheap-mic"],
)
def test_filters_are_3db_down_at_the_cutoffs(noise_in, transform, cutoffs, octave_out):
    out = render(cond(transform), noise_in)
    assert out.shape == noise_in.shape
    freqs, gain = response_db(noise_in, out)
    for hz in cutoffs:
        assert at(freqs, gain, hz) == pytest.approx(-3.0, abs=1.0)
    for hz in octave_out:
        assert at(freqs, gain, hz) <= -18.0  # 24 dB/octave nominal


def test_filters_pass_the_band_between_cutoffs(noise_in):
    out = render(cond({"type": "bandpass", "low_hz": 500.0, "high_hz": 4000.0}), noise_in)
    freqs, gain = response_db(noise_in, out)
    assert at(freqs, gain, 1400) == pytest.approx(0.0, abs=1.0)


# --- clip, gain, reverb -------------------------------------------------------------------


@pytest.mark.parametrize("percentile", [90.0, 98.0, 99.5])
def test_clip_levels_at_the_percentile(x, percentile):
    out = render(cond({"type": "clip", "percentile": percentile}), x)
    level = np.percentile(np.abs(x), percentile)
    assert np.max(np.abs(out)) == pytest.approx(level, rel=1e-6)
    at_level = np.mean(np.abs(out) >= level * (1 - 1e-6)) * 100
    assert at_level == pytest.approx(100 - percentile, abs=0.1)
    below = np.abs(x) < level
    assert np.array_equal(out[below], x[below])  # only the peaks are touched


@pytest.mark.parametrize("db", [-12.0, 0.0, 6.0])
def test_gain_scales_exactly(x, db):
    out = render(cond({"type": "gain", "db": db}), x)
    np.testing.assert_allclose(out, x.astype(np.float64) * 10 ** (db / 20), rtol=1e-6, atol=0)


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_reverb_keeps_length_and_level(x, rt60):
    out = render(cond({"type": "reverb", "rt60_s": rt60}), x)
    assert out.shape == x.shape and out.dtype == np.float32
    assert dsp.rms(out) == pytest.approx(dsp.rms(x), rel=1e-4)
    assert not np.allclose(out, x, atol=1e-3)


def impulse_response(rt60: float, seconds: float = 2.0, seed: int = 7) -> np.ndarray:
    impulse = np.zeros(int(seconds * SR), dtype=np.float32)
    impulse[0] = 1.0
    return render(cond({"type": "reverb", "rt60_s": rt60}), impulse, seed=seed).astype(np.float64)


@pytest.mark.parametrize("rt60", [0.4, 1.0])
def test_reverb_decays_60_db_in_rt60(rt60):
    response = impulse_response(rt60)
    window = int(0.01 * SR)
    frames = response[: response.size // window * window].reshape(-1, window)
    level_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-30)
    times = (np.arange(level_db.size) + 0.5) * window / SR
    fit = (times > 0.02) & (times < 0.8 * rt60)  # the diffuse tail, before the response ends
    slope = np.polyfit(times[fit], level_db[fit], 1)[0]  # dB per second
    assert -60 / slope == pytest.approx(rt60, rel=0.2)


def test_longer_reverb_smears_more():
    def late_share(rt60: float) -> float:
        energy = impulse_response(rt60) ** 2
        return float(energy[int(0.2 * SR) :].sum() / energy.sum())

    short, long = late_share(0.2), late_share(1.0)
    assert short < 1e-3 < long
    assert long > 100 * short


# --- codecs -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "kbps"), [("mp3", 32.0), ("mp3", 64.0), ("opus", 16.0), ("opus", 32.0)])
def test_codec_bitrate_is_close_to_the_request(x, fmt, kbps):
    encoded = dsp.encode(x, SR, fmt, kbps)
    measured = len(encoded) * 8 / (x.size / SR) / 1000
    assert measured == pytest.approx(kbps, rel=0.3)


@pytest.mark.parametrize(
    ("fmt", "kbps"), [("mp3", 16.0), ("mp3", 32.0), ("mp3", 128.0), ("opus", 16.0), ("opus", 32.0)]
)
def test_codec_round_trip_keeps_length_timing_and_content(x, fmt, kbps):
    out = render(cond({"type": "codec", "format": fmt, "bitrate_kbps": kbps}), x)
    assert out.shape == x.shape and out.dtype == np.float32
    lag, back = aligned(x, out)
    assert abs(lag) <= 1  # the codec's delay is removed (mp3 at low bitrates has no gapless header)
    assert np.corrcoef(x, back)[0, 1] > 0.9
    assert snr_db(x, back) > 5.0
    assert not np.array_equal(out, x)  # it is lossy


def test_lower_bitrate_is_worse(x):
    def quality(kbps: float) -> float:
        return snr_db(x, aligned(x, render(cond({"type": "codec", "format": "opus", "bitrate_kbps": kbps}), x))[1])

    assert quality(8.0) < quality(64.0)


# --- determinism, cache keys --------------------------------------------------------------

RANDOM_CONDITION = cond(
    {"type": "tone", "freq_hz": 50.0, "snr_db": 15.0},
    {"type": "noise", "color": "pink", "snr_db": 10.0},
    {"type": "reverb", "rt60_s": 0.3},
    name="messy",
)


def test_rendering_is_reproducible(x):
    first = render(RANDOM_CONDITION, x, utt("u1"), seed=3)
    again = render(RANDOM_CONDITION, x, utt("u1"), seed=3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, render(RANDOM_CONDITION, x, utt("u2"), seed=3))  # other utterance
    assert not np.array_equal(first, render(RANDOM_CONDITION, x, utt("u1"), seed=4))  # other seed
    renamed = RANDOM_CONDITION.model_copy(update={"name": "messy2"})
    assert not np.array_equal(first, render(renamed, x, utt("u1"), seed=3))  # other condition


def test_rendering_ignores_processing_and_pool_order(x, babble_pool):
    condition = cond({"type": "babble", "talkers": 2, "snr_db": 5.0}, {"type": "noise", "snr_db": 20.0})
    a, b = babble_pool[0], babble_pool[6]
    forward = Simulator(babble_pool, seed=1, sample_rate=SR)
    backward = Simulator(babble_pool[::-1], seed=1, sample_rate=SR)
    a_first = [forward.render(condition, u, x, SR) for u in (a, b)]
    b_first = [backward.render(condition, u, x, SR) for u in (b, a)][::-1]
    assert all(np.array_equal(p, q) for p, q in zip(a_first, b_first, strict=True))
    assert not np.array_equal(a_first[0], a_first[1])


def test_condition_without_transforms_is_the_input(x):
    out = render(cond(name="clean"), x)
    assert np.array_equal(out, x) and out.dtype == np.float32
    simulator = Simulator([], seed=0, sample_rate=SR)
    assert not simulator.bind(cond(name="clean")).changes_audio
    assert simulator.bind(cond(name="clean")).key(utt(), "audio-key", lambda u: u.id) == "audio-key"


def audio_key_of(u: Utterance) -> str:
    return f"key-of-{u.id}"


def test_key_is_independent_of_pool_order(babble_pool):
    condition = cond({"type": "babble", "talkers": 2, "snr_db": 5.0})
    target = babble_pool[1]
    forward = Simulator(babble_pool, seed=1, sample_rate=SR).key(condition, target, "k", audio_key_of)
    shuffled = [babble_pool[i] for i in np.random.default_rng(0).permutation(len(babble_pool))]
    assert Simulator(shuffled, seed=1, sample_rate=SR).key(condition, target, "k", audio_key_of) == forward
    assert Simulator(babble_pool, seed=2, sample_rate=SR).key(condition, target, "k", audio_key_of) != forward


def test_key_follows_talker_audio(babble_pool):
    condition = cond({"type": "babble", "talkers": 3, "snr_db": 5.0})  # all of B, C, D are chosen
    simulator = Simulator(babble_pool, seed=1, sample_rate=SR)
    before = simulator.key(condition, babble_pool[0], "k", audio_key_of)
    changed = simulator.key(
        condition, babble_pool[0], "k", lambda u: audio_key_of(u) + ("!" if u.speaker == "B" else "")
    )
    assert changed != before


def test_key_follows_noise_file_bytes_and_parameters(x, noise_file):
    def key(condition: Condition, u: Utterance = utt(), audio_key: str = "k") -> str:
        return Simulator([], seed=1, sample_rate=SR).key(condition, u, audio_key, audio_key_of)

    base = cond({"type": "noise", "file": str(noise_file), "snr_db": 10.0})
    original = key(base)
    assert key(base) == original  # a fresh simulator agrees
    assert key(cond({"type": "noise", "file": str(noise_file), "snr_db": 11.0})) != original
    assert key(base, audio_key="other-audio") != original
    assert key(base, utt("u2")) != original
    assert key(cond({"type": "noise", "color": "pink", "snr_db": 10.0})) != key(cond({"type": "noise", "snr_db": 10.0}))
    assert key(cond({"type": "tone", "freq_hz": 50, "snr_db": 10})) != key(
        cond({"type": "tone", "freq_hz": 60, "snr_db": 10})
    )

    data, rate = sf.read(noise_file, dtype="float32")
    sf.write(noise_file, data * 0.5, rate, subtype="FLOAT")  # same path, other bytes
    assert key(base) != original


# --- spec validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transform", "fragment"),
    [
        ({"type": "tones", "freq_hz": 50, "snr_db": 10}, "tones"),
        ({"type": "noise", "color": "white"}, "snr_db"),
        ({"type": "babble"}, "snr_db"),
        ({"type": "bandpass", "low_hz": 3000, "high_hz": 300}, "low_hz"),
        ({"type": "bandpass", "low_hz": 300, "high_hz": 300}, "low_hz"),
        ({"type": "telephone", "low_hz": 3000, "high_hz": 2000}, "low_hz"),
        ({"type": "noise", "color": "pink", "file": "hum.wav", "snr_db": 10}, "either color or file"),
        ({"type": "noise", "color": "purple", "snr_db": 10}, "color"),
        ({"type": "clip", "percentile": 40}, "percentile"),
        ({"type": "codec", "format": "aac"}, "format"),
        ({"type": "gain", "db": 3, "extra": 1}, "extra"),
    ],
)
def test_invalid_transforms_are_rejected(transform, fragment):
    with pytest.raises(ValidationError) as excinfo:
        cond(transform)
    assert fragment in str(excinfo.value)


def test_condition_names_are_checked():
    with pytest.raises(ValidationError):
        Condition.model_validate({"name": "has space", "transforms": []})
    parsed = cond({"type": "noise", "snr_db": 20}, {"type": "codec", "format": "mp3"}, name="ok.name-1")
    assert [t.type for t in parsed.transforms] == ["noise", "codec"]
    assert parsed.transforms[1].bitrate_kbps == 32.0  # defaults fill in
