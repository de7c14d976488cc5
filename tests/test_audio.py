import numpy as np
import pytest
import soundfile as sf
from conftest import write_tone

from harness.data.audio import AudioError, file_sha256, load_audio, resample, segment_key
from harness.data.manifest import Utterance


def utt(path, **kw):
    return Utterance(id="u", audio=path, text="x", **kw)


def test_stereo_44k_is_downmixed_and_resampled(tmp_path):
    path = write_tone(tmp_path / "s.wav", seconds=1.0, rate=44_100, channels=2)
    samples = load_audio(utt(path))
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) == pytest.approx(16_000, abs=2)
    # a 440 Hz tone survives resampling: its spectrum peaks at 440 Hz
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) * 16_000 / len(samples) == pytest.approx(440, abs=2)


def test_segment_offset_and_duration(tmp_path):
    rate = 16_000
    data = np.arange(rate * 2, dtype=np.float32) / (rate * 2)
    path = tmp_path / "ramp.flac"
    sf.write(path, data, rate, subtype="PCM_24")
    samples = load_audio(utt(path, offset=0.5, duration=0.25))
    assert len(samples) == 4000
    assert samples[0] == pytest.approx(data[8000], abs=1e-4)


def test_undecodable_file_raises_audio_error(tmp_path):
    path = tmp_path / "junk.wav"
    path.write_bytes(b"not audio at all" * 100)
    with pytest.raises(AudioError):
        load_audio(utt(path))


def test_hash_tracks_content_and_segment(tmp_path):
    a = write_tone(tmp_path / "a.wav")
    digest = file_sha256(a)
    assert segment_key(digest, utt(a)) != segment_key(digest, utt(a, offset=0.1))
    write_tone(a, seconds=0.6)
    assert file_sha256(a) != digest


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_resample_is_librosa_soxr_hq_bit_for_bit(rate):
    """Transcripts cached before the harness dropped librosa's resampler must stay valid."""
    librosa = pytest.importorskip("librosa")
    samples = np.random.default_rng(rate).standard_normal(rate + 7).astype(np.float32)
    expected = librosa.resample(samples, orig_sr=rate, target_sr=16_000, res_type="soxr_hq")
    got = resample(samples, rate, 16_000)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
