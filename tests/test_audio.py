"""Tests for reactlib.data.audio: speech synthesis, WAV I/O and the 78-d MFCC features."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io.wavfile
from hypothesis import given, settings
from hypothesis import strategies as st

from reactlib.data import audio
from reactlib.data.audio import (
    FEATURE_NAMES,
    LOG_FLOOR,
    NUM_FEATURES,
    delta,
    features_for_clip,
    log_mel_frames,
    mel_filterbank,
    mfcc78,
    read_wav,
    synthesize,
    write_wav,
)

SR = 16000
DELTA_COLS = np.r_[13:39, 52:78]
CEPS_A, CEPS_B = slice(0, 13), slice(39, 52)


def _tone(freq, seconds=1.0, sr=SR, amplitude=0.5):
    t = np.arange(round(seconds * sr)) / sr
    return amplitude * np.sin(2 * np.pi * freq * t)


def _pitch(wav, sr):
    """Fundamental frequency from the autocorrelation peak between 60 and 400 Hz."""
    x = wav.astype(np.float64) - wav.mean()
    r = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * len(x))) ** 2)[: len(x)]
    lo, hi = sr // 400, sr // 60
    return sr / (lo + np.argmax(r[lo:hi]))


def _reference_subframe(x, sr):
    """Kaldi's MFCC steps for one window, written out term by term (no shared code)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    log_energy = math.log(max(float(np.sum(x * x)), LOG_FLOOR))
    y = np.array([x[i] - 0.97 * x[i - 1] if i else x[0] - 0.97 * x[0] for i in range(len(x))])
    n = len(y)
    y = y * np.array([(0.5 - 0.5 * math.cos(2 * math.pi * i / (n - 1))) ** 0.85 for i in range(n)])
    n_fft = 1
    while n_fft < n:
        n_fft *= 2
    power = np.abs(np.fft.fft(y, n_fft)[: n_fft // 2 + 1]) ** 2

    def mel(f):
        return 1127 * math.log(1 + f / 700)

    lo, hi = mel(20.0), mel(sr / 2)
    step = (hi - lo) / 24
    energies = []
    for b in range(23):
        left, centre, right = lo + b * step, lo + (b + 1) * step, lo + (b + 2) * step
        total = 0.0
        for i, p in enumerate(power):
            m = mel(i * sr / n_fft)
            if left < m <= centre:
                total += p * (m - left) / (centre - left)
            elif centre < m < right:
                total += p * (right - m) / (right - centre)
        energies.append(math.log(max(total, LOG_FLOOR)))
    ceps = []
    for k in range(13):
        scale = math.sqrt(1 / 23) if k == 0 else math.sqrt(2 / 23)
        c = scale * sum(
            e * math.cos(math.pi * k * (2 * m + 1) / 46) for m, e in enumerate(energies)
        )
        ceps.append(c * (1 + 11 * math.sin(math.pi * k / 22)))
    ceps[0] = log_energy
    return np.array(ceps)


# --- feature layout -------------------------------------------------------------------------------


def test_feature_names():
    """78 unique names: 13 cepstra, 13 deltas, 13 delta-deltas for each half of the frame."""
    assert NUM_FEATURES == len(FEATURE_NAMES) == 78
    assert len(set(FEATURE_NAMES)) == 78
    assert FEATURE_NAMES[0] == "mfcc0_a"
    assert FEATURE_NAMES[13] == "d0_a"
    assert FEATURE_NAMES[26] == "dd0_a"
    assert FEATURE_NAMES[39] == "mfcc0_b"
    assert FEATURE_NAMES[-1] == "dd12_b"


# --- mel filterbank -------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_fft", "sr"), [(512, 16000), (2048, 44100), (1024, 22050)])
def test_mel_filterbank_triangles(n_fft, sr):
    """Non-negative unit-peak triangles, ordered by frequency, summing to one in the interior."""
    bank = mel_filterbank(23, n_fft, sr)
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    assert bank.shape == (23, n_fft // 2 + 1)
    assert np.all(bank >= 0) and np.all(bank <= 1)
    assert np.all(bank.max(axis=1) > 0.5)
    assert np.all(np.diff(np.argmax(bank, axis=1)) > 0)
    assert np.all(bank[:, freqs <= 20.0] == 0)
    mel = 1127 * np.log1p(freqs / 700)
    edges = np.linspace(1127 * np.log1p(20 / 700), 1127 * np.log1p(sr / 2 / 700), 25)
    inside = (mel >= edges[1]) & (mel <= edges[-2])
    np.testing.assert_allclose(bank[:, inside].sum(axis=0), 1.0, atol=1e-9)
    with pytest.raises(ValueError):
        bank[0, 0] = 1.0  # the cached bank is read-only


def test_mel_filterbank_one_triangle_by_hand():
    """One filter over 0..4 kHz: a triangle in mel with its apex at half of mel(4 kHz)."""
    bank = mel_filterbank(1, 8, 8000, fmin=0.0)  # rfft bins at 0, 1, 2, 3, 4 kHz
    mel = [1127 * math.log1p(f / 700) for f in (0, 1000, 2000, 3000, 4000)]
    top = mel[-1] / 2
    np.testing.assert_allclose(bank[0], [min(m / top, (mel[-1] - m) / top) for m in mel])


@pytest.mark.parametrize(
    "kwargs", [{"n_mels": 0}, {"fmin": 9000.0}, {"fmax": 9000.0}, {"fmin": -1.0}]
)
def test_mel_filterbank_rejects_bad_arguments(kwargs):
    args = {"n_mels": 23, "n_fft": 512, "sample_rate": SR} | kwargs
    with pytest.raises(ValueError):
        mel_filterbank(**args)


# --- features of known signals --------------------------------------------------------------------


def test_tone_peaks_in_the_mel_bin_holding_it():
    """A 1 kHz sine puts its mel energy in the filter with the largest weight at 1 kHz."""
    _, log_mel = log_mel_frames(_tone(1000.0), SR)
    bank = mel_filterbank(23, 512, SR)
    expected = int(np.argmax(bank[:, round(1000 * 512 / SR)]))
    assert np.all(np.argmax(log_mel[2:-2], axis=1) == expected)
    assert log_mel.shape == (50, 23)


@pytest.mark.parametrize(("sr", "start"), [(16000, 2200), (44100, 6064)])
def test_c0_is_the_log_energy_of_the_window(sr, start):
    """c0 of sub-frame 7 (frame 3, second half) is log sum x^2 of its mean-removed 25 ms window.

    Sub-frame 7 is centred at 7.5 * sr / 50 samples; the window holds int(0.025 sr) samples:
    16 kHz: centre 2400, 400 samples from 2200; 44.1 kHz: centre 6615, 1102 samples from 6064.
    """
    wav = np.random.default_rng(3).uniform(-0.5, 0.5, sr) + 0.1
    x = wav[start : start + int(0.025 * sr)]
    golden = math.log(np.sum((x - x.mean()) ** 2))
    assert mfcc78(wav, sr)[3, 39] == pytest.approx(golden, rel=1e-6)


@pytest.mark.parametrize("sr", [16000, 44100])
def test_cepstra_match_the_formulas_written_out(sr):
    """Both halves of a video frame equal Kaldi's steps computed by hand for their windows."""
    wav = np.random.default_rng(4).standard_normal(sr // 2) * 0.1 + _tone(300.0, 0.5, sr)
    feats = mfcc78(wav, sr)
    length = int(0.025 * sr)
    for j, cols in ((10, CEPS_A), (11, CEPS_B)):
        start = math.floor((j + 0.5) * sr / 50 - length / 2 + 0.5)
        ref = _reference_subframe(wav[start : start + length], sr)
        np.testing.assert_allclose(feats[j // 2, cols], ref, rtol=1e-4, atol=1e-4)


def test_first_window_is_zero_padded():
    """Sub-frame 0 starts before the signal; the missing samples are zeros."""
    wav = np.random.default_rng(5).standard_normal(SR) * 0.1
    x = np.concatenate([np.zeros(40), wav[:360]])  # centre 160, window 400: samples -40 .. 359
    np.testing.assert_allclose(mfcc78(wav, SR)[0, CEPS_A], _reference_subframe(x, SR), rtol=1e-4)


@pytest.mark.parametrize("sr", [16000, 44100])
def test_stationary_tone_has_no_deltas(sr):
    """A 1 kHz tone repeats every sub-frame: deltas vanish; at 440 Hz they stay small.

    The first and last windows reach into the zero padding, which moves the deltas of the two
    outer sub-frames and the delta-deltas of the four outer ones: three video frames a side.
    """
    feats = mfcc78(_tone(1000.0, sr=sr), sr)
    assert np.abs(feats[3:-3][:, DELTA_COLS]).max() < 1e-4
    feats = mfcc78(_tone(440.0, sr=sr), sr)
    scale = np.abs(feats[:, CEPS_A]).max()
    assert np.abs(feats[3:-3][:, DELTA_COLS]).max() < 0.02 * scale
    # the edges do move: the last window runs into the zero padding
    assert np.abs(mfcc78(_tone(440.0, 1.01, sr), sr)[-1, DELTA_COLS]).max() > 1e-3


def test_doubling_amplitude_shifts_only_c0():
    """Twice the amplitude adds log 4 to c0 and leaves c1..c12 as they were."""
    wav = _tone(700.0) + 0.05 * np.random.default_rng(6).standard_normal(SR)
    one, two = mfcc78(wav, SR), mfcc78(2 * wav, SR)
    for c0 in (0, 39):
        np.testing.assert_allclose(two[:, c0] - one[:, c0], math.log(4), atol=1e-3)
    for ceps in (slice(1, 13), slice(40, 52)):
        np.testing.assert_allclose(two[:, ceps], one[:, ceps], atol=1e-3)


def test_silence_gives_finite_constant_features():
    """Zeros hit the log floor everywhere: finite, the same in every frame, deltas exactly 0."""
    feats = mfcc78(np.zeros(SR), SR)
    assert np.all(np.isfinite(feats))
    assert np.all(feats == feats[0])
    assert np.all(feats[:, DELTA_COLS] == 0)
    assert feats[0, 0] == pytest.approx(math.log(LOG_FLOOR))


def test_delta_regression():
    """A ramp has delta equal to its slope inside and smaller at the repeated edges."""
    ramp = 3.0 * np.arange(10.0)[:, None]
    d = delta(ramp)
    np.testing.assert_allclose(d[2:-2], 3.0)
    np.testing.assert_allclose(d[[0, 1, -2, -1], 0], [1.5, 2.4, 2.4, 1.5])
    np.testing.assert_allclose(delta(d)[4:-4], 0.0, atol=1e-12)


# --- shapes and input handling --------------------------------------------------------------------


@pytest.mark.parametrize("sr", [16000, 22050, 44100, 48000])
def test_shapes_and_frame_count(sr):
    """T = floor(len * fps / sr) by default; num_frames pads with silence or cuts."""
    wav = np.random.default_rng(7).standard_normal(2 * sr + sr // 50) * 0.1  # 50.5 frames
    feats = mfcc78(wav, sr)
    assert feats.shape == (50, 78) and feats.dtype == np.float32
    longer = mfcc78(wav, sr, num_frames=60)
    assert longer.shape == (60, 78)
    np.testing.assert_allclose(longer[:48], feats[:48], rtol=1e-5, atol=1e-5)
    assert np.all(longer[55:, [0, 39]] == np.float32(math.log(LOG_FLOOR)))
    shorter = mfcc78(wav, sr, num_frames=10)
    assert shorter.shape == (10, 78)
    np.testing.assert_allclose(shorter[:8], feats[:8], rtol=1e-5, atol=1e-5)
    assert mfcc78(wav, sr, num_frames=0).shape == (0, 78)
    assert mfcc78(wav[: sr // 50], sr).shape == (0, 78)


def test_channels_are_averaged():
    """A (samples, channels) array gives the features of its channel mean."""
    rng = np.random.default_rng(8)
    stereo = rng.standard_normal((SR, 2)) * 0.1
    np.testing.assert_array_equal(mfcc78(stereo, SR), mfcc78(stereo.mean(axis=1), SR))


@pytest.mark.parametrize(
    ("wav", "sr", "kwargs", "match"),
    [
        (np.zeros(SR, dtype=np.int16), SR, {}, "floating-point"),
        (np.array([0.0, np.nan] * SR), SR, {}, "NaN"),
        (np.zeros((2, 2, SR)), SR, {}, "1-d"),
        (np.zeros(SR), 0, {}, "sample_rate"),
        (np.zeros(SR), 16000.0, {}, "integer"),
        (np.zeros(SR), 4000, {}, "samples per video frame"),
        (np.zeros(SR), SR, {"fps": 0}, "fps"),
        (np.zeros(SR), SR, {"num_frames": -1}, "num_frames"),
        (np.zeros(SR), SR, {"num_frames": 2.5}, "num_frames"),
    ],
)
def test_mfcc_rejects_bad_input(wav, sr, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mfcc78(wav, sr, **kwargs)


@settings(max_examples=25, deadline=None)
@given(
    length=st.integers(0, 30000),
    sr=st.sampled_from([8000, 16000, 22050, 44100]),
    scale=st.floats(0, 10),
    num_frames=st.one_of(st.none(), st.integers(0, 40)),
    seed=st.integers(0, 2**32 - 1),
)
def test_mfcc_random_input(length, sr, scale, num_frames, seed):
    """Any finite audio gives finite float32 features of the promised shape."""
    wav = np.random.default_rng(seed).standard_normal(length) * scale
    feats = mfcc78(wav, sr, num_frames=num_frames)
    expected = length * 25 // sr if num_frames is None else num_frames
    assert feats.shape == (expected, 78) and feats.dtype == np.float32
    assert np.all(np.isfinite(feats))


# --- WAV I/O --------------------------------------------------------------------------------------


def test_wav_round_trip(tmp_path):
    """16-bit PCM keeps samples to half a step and the rate exactly; the write leaves one file."""
    wav = np.clip(_tone(440.0, 0.5, 22050) + 0.3, -1, 1).astype(np.float32)
    path = write_wav(tmp_path / "clip.wav", wav, 22050)
    assert path == tmp_path / "clip.wav"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.wav"]
    back, sr = read_wav(path)
    assert sr == 22050 and back.dtype == np.float32 and back.shape == wav.shape
    np.testing.assert_allclose(back, wav, atol=0.5 / 32768 + 1e-7)
    assert scipy.io.wavfile.read(path)[1].dtype == np.int16
    write_wav(path, np.array([2.0, -2.0]), 22050)  # out of range: clipped
    np.testing.assert_allclose(read_wav(path)[0], [32767 / 32768, -1.0])


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    """A write that dies half way keeps the old file and leaves no temporary file behind."""
    target = tmp_path / "clip.wav"
    write_wav(target, np.zeros(100), SR)
    before = target.read_bytes()

    def broken(path, rate, data):
        with open(path, "wb") as fh:
            fh.write(b"RIFF")
        raise OSError("disk full")

    monkeypatch.setattr(audio.scipy.io.wavfile, "write", broken)
    with pytest.raises(OSError, match="disk full"):
        write_wav(target, np.ones(100) * 0.5, SR)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.wav"]
    assert target.read_bytes() == before


def test_write_wav_rejects_bad_input(tmp_path):
    for wav, sr in [(np.array([np.nan]), SR), (np.zeros((2, 2)), SR), (np.zeros(4), 0)]:
        with pytest.raises(ValueError):
            write_wav(tmp_path / "x.wav", wav, sr)
    assert list(tmp_path.iterdir()) == []


def test_stereo_int16_is_averaged(tmp_path):
    """REACT's 44.1 kHz stereo files come back as the mean of both channels."""
    left = np.array([16384, -32768, 0, 100], dtype=np.int16)
    right = np.array([0, -32768, 8192, 300], dtype=np.int16)
    scipy.io.wavfile.write(tmp_path / "s.wav", 44100, np.stack([left, right], axis=1))
    wav, sr = read_wav(tmp_path / "s.wav")
    assert sr == 44100 and wav.shape == (4,)
    np.testing.assert_allclose(wav, [0.25, -1.0, 0.125, 200 / 32768])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (np.array([-1.0, 0.5, 0.25], dtype=np.float32), [-1.0, 0.5, 0.25]),
        (np.array([-1.0, 0.5, 0.25], dtype=np.float64), [-1.0, 0.5, 0.25]),
        (np.array([0, 128, 192], dtype=np.uint8), [-1.0, 0.0, 0.5]),
        (np.array([-(2**31), 2**30, 0], dtype=np.int32), [-1.0, 0.5, 0.0]),
    ],
)
def test_read_wav_sample_types(tmp_path, data, expected):
    scipy.io.wavfile.write(tmp_path / "t.wav", 8000, data)
    wav, sr = read_wav(tmp_path / "t.wav")
    assert sr == 8000 and wav.dtype == np.float32
    np.testing.assert_allclose(wav, expected)


def test_read_wav_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        read_wav(path)


@pytest.mark.parametrize("kind", ["garbage", "short header", "truncated data", "empty"])
def test_read_wav_unreadable(tmp_path, kind):
    """Garbage, a cut header, a cut data chunk and an empty clip all fail naming the file."""
    good = tmp_path / "good.wav"
    scipy.io.wavfile.write(good, SR, np.arange(1000, dtype=np.int16))
    content = {
        "garbage": b"this is not a wav file at all" * 4,
        "short header": good.read_bytes()[:30],
        "truncated data": good.read_bytes()[:1000],
        "empty": None,
    }[kind]
    bad = tmp_path / "bad.wav"
    if content is None:
        scipy.io.wavfile.write(bad, SR, np.zeros(0, dtype=np.int16))
    else:
        bad.write_bytes(content)
    with pytest.raises(ValueError, match="bad.wav"):
        read_wav(bad)


def test_features_for_clip(tmp_path):
    """Reading the file and computing mfcc78 at its own rate, in one call."""
    wav = synthesize(np.full(20, 120.0), np.ones(20), np.full(20, 0.5), sample_rate=44100)
    write_wav(tmp_path / "c.wav", wav, 44100)
    read, _ = read_wav(tmp_path / "c.wav")
    feats = features_for_clip(tmp_path / "c.wav", 25)
    assert feats.shape == (25, 78)
    np.testing.assert_array_equal(feats, mfcc78(read, 44100, num_frames=25))


# --- synthesis ------------------------------------------------------------------------------------


def _syllables(seconds=20.0, seed=0):
    """Prosody with speech throughout, and a jaw opening ~4 times a second by random amounts."""
    rng = np.random.default_rng(seed)
    frames = round(seconds * 25)
    t = np.arange(frames) / 25
    peaks = np.repeat(rng.uniform(0.1, 1.0, frames // 6 + 1), 6)[:frames]
    mouth = np.clip(peaks * np.abs(np.sin(np.pi * 4 * t)), 0, 1)
    f0 = 130 + 25 * np.sin(2 * np.pi * 0.4 * t)
    return f0, np.ones(frames), mouth


@pytest.mark.parametrize(("frames", "sr"), [(1, 16000), (25, 16000), (37, 22050), (10, 44100)])
def test_synthesize_length_and_range(frames, sr):
    wav = synthesize(np.full(frames, 150.0), np.full(frames, 50.0), np.ones(frames), sample_rate=sr)
    assert wav.shape == (round(frames * sr / 25),) and wav.dtype == np.float32
    assert 0.9 < np.abs(wav).max() <= 0.99 + 1e-6  # loud prosody is limited, not clipped


def test_pauses_are_silent():
    """Frames with zero energy are exactly silent once away from the fade at their edges."""
    energy = np.r_[np.ones(25), np.zeros(25), np.ones(25)]
    wav = synthesize(np.full(75, 140.0), energy, np.full(75, 0.6)).reshape(75, -1)
    rms = np.sqrt(np.mean(wav.astype(np.float64) ** 2, axis=1))
    assert np.all(rms[27:48] < 1e-4)
    assert np.all(rms[:24] > 1e-2) and np.all(rms[51:] > 1e-2)
    assert not np.any(synthesize(np.zeros(10), np.zeros(10), np.zeros(10)))


@pytest.mark.parametrize(
    ("f0", "sr"), [(100.0, 16000), (150.0, 16000), (220.0, 16000), (180.0, 44100)]
)
def test_pitch_follows_f0(f0, sr):
    wav = synthesize(np.full(50, f0), np.ones(50), np.full(50, 0.5), sample_rate=sr)
    steady = wav[sr // 4 : 3 * sr // 4]
    assert _pitch(steady, sr) == pytest.approx(f0, rel=0.03)


def test_pitch_glide_has_no_clicks():
    """An f0 jump between frames is bridged by a continuous phase: no sample step stands out.

    Restarting the phase at the new f0 would step by up to twice the peak (about 0.3 here)
    at 1 s; the largest steps of the steady parts, aspiration noise included, are about 0.07.
    """
    f0 = np.r_[np.full(25, 110.0), np.full(25, 190.0)]
    wav = synthesize(f0, np.ones(50), np.full(50, 0.5), seed=1).astype(np.float64)
    steps = np.abs(np.diff(wav))
    steady = max(steps[: 20 * 640].max(), steps[30 * 640 :].max())
    assert steps[24 * 640 : 26 * 640].max() <= 1.1 * steady
    assert _pitch(wav[: 20 * 640], SR) == pytest.approx(110, rel=0.03)
    assert _pitch(wav[30 * 640 :], SR) == pytest.approx(190, rel=0.03)


def test_synthesize_is_seeded():
    f0, energy, mouth = _syllables(2.0)
    a = synthesize(f0, energy, mouth, seed=3)
    np.testing.assert_array_equal(a, synthesize(f0, energy, mouth, seed=3))
    b = synthesize(f0, energy, mouth, seed=4)
    assert not np.array_equal(a, b)
    assert np.sqrt(np.mean((a - b) ** 2)) < 0.2 * np.sqrt(np.mean(a**2))  # only the noise differs


def test_speech_energy_tracks_mouth_open():
    """Frame RMS and c0 rise and fall with jawOpen while the speaker talks on."""
    f0, energy, mouth = _syllables()
    wav = synthesize(f0, energy, mouth)
    rms = np.sqrt(np.mean(wav.reshape(len(mouth), -1).astype(np.float64) ** 2, axis=1))
    assert np.corrcoef(rms, mouth)[0, 1] > 0.7
    feats = mfcc78(wav, SR)
    assert np.corrcoef(feats[:, 0] + feats[:, 39], mouth)[0, 1] > 0.7


def test_first_formant_rises_with_mouth_open():
    """The spectral centroid below 1 kHz moves up as the mouth opens."""
    f0, energy, mouth = _syllables(10.0, seed=1)
    frames = synthesize(f0, energy, mouth).reshape(len(mouth), -1).astype(np.float64)
    power = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2
    freqs = np.fft.rfftfreq(frames.shape[1], 1 / SR)
    low = freqs < 1000
    centroid = power[:, low] @ freqs[low] / power[:, low].sum(axis=1)
    assert np.corrcoef(centroid, mouth)[0, 1] > 0.7
    assert centroid[mouth > 0.7].mean() - centroid[mouth < 0.2].mean() > 100


@pytest.mark.parametrize(
    ("f0", "energy", "mouth", "match"),
    [
        ([100.0, 100.0], [1.0], [0.5], "same length"),
        ([100.0, np.nan], [1.0, 1.0], [0.5, 0.5], "NaN"),
        ([100.0, 100.0], [1.0, -0.1], [0.5, 0.5], "energy"),
        ([100.0, 0.0], [1.0, 1.0], [0.5, 0.5], "f0"),
        ([100.0, 100.0], [1.0, 1.0], [0.5, 1.5], "mouth_open"),
        ([], [], [], "non-empty"),
        ([9000.0], [1.0], [0.5], "Nyquist"),
    ],
)
def test_synthesize_rejects_bad_input(f0, energy, mouth, match):
    with pytest.raises(ValueError, match=match):
        synthesize(np.array(f0), np.array(energy), np.array(mouth))


def test_synthesize_ignores_f0_in_pauses():
    """f0 may be 0 where energy is 0 (an unvoiced tracker's output)."""
    wav = synthesize(np.r_[0.0, 120.0, 120.0], np.r_[0.0, 1.0, 1.0], np.full(3, 0.5))
    assert wav.shape == (1920,) and np.all(np.isfinite(wav))


_prosody_strategy = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(60, 400), min_size=n, max_size=n),
        st.lists(st.one_of(st.just(0.0), st.floats(0, 5)), min_size=n, max_size=n),
        st.lists(st.floats(0, 1), min_size=n, max_size=n),
    )
)


@settings(max_examples=25, deadline=None)
@given(prosody=_prosody_strategy, sr=st.sampled_from([16000, 22050]))
def test_synthesize_random_prosody(prosody, sr):
    f0, energy, mouth = map(np.array, prosody)
    wav = synthesize(f0, energy, mouth, sample_rate=sr)
    assert wav.shape == (round(len(f0) * sr / 25),)
    assert np.all(np.isfinite(wav)) and np.abs(wav).max() <= 0.99 + 1e-6


@settings(max_examples=25, deadline=None)
@given(
    prosody=_prosody_strategy,
    fault=st.sampled_from(["nan", "inf", "length", "negative"]),
    which=st.integers(0, 2),
    at=st.integers(0, 59),
)
def test_synthesize_random_bad_input(prosody, fault, which, at):
    arrays = [np.array(x) for x in prosody]
    target = arrays[1] if fault == "negative" else arrays[which]
    i = at % len(target)
    if fault == "nan":
        target[i] = np.nan
    elif fault == "inf":
        target[i] = np.inf
    elif fault == "negative":
        target[i] = -1.0
    else:
        arrays[which] = np.append(target, target[-1])
    with pytest.raises(ValueError):
        synthesize(*arrays)
