"""Speech audio for SynthReact, WAV I/O, and REACT-baseline MFCC features (78 per video frame).

:func:`synthesize` turns per-frame prosody (f0, energy, jawOpen at 25 fps) into a voiced,
formant-shaped waveform whose loudness and first formant follow the mouth, so that the audio a
listener model hears is coupled to the speaker's face. :func:`mfcc78` computes the features the
REACT baselines fed their models: Kaldi-style MFCCs with log energy, two analysis frames per 40 ms
video frame, with deltas and delta-deltas, ``2 x 39 = 78`` numbers per video frame. Everything is
numpy/scipy; no resampling happens anywhere, so 16 kHz SynthReact audio and REACT's 44.1 kHz
stereo files go through the same code.
"""

from __future__ import annotations

import functools
import math
import struct
import warnings
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.io.wavfile
from numpy.lib.stride_tricks import sliding_window_view

from reactlib import paths
from reactlib.face.coeffs import FPS

# --- feature conventions -----------------------------------------------------------------------

SUBFRAMES = 2
"""Analysis frames per video frame (20 ms each at 25 fps)."""
WINDOW_SECONDS = 0.025
"""Analysis window length, centred on each sub-frame."""
PREEMPHASIS = 0.97
NUM_MELS = 23
"""Kaldi's default number of triangular mel bins."""
MEL_FMIN = 20.0
"""Lower edge of the mel filterbank in Hz (Kaldi's default); the upper edge is Nyquist."""
NUM_CEPS = 13
LIFTER = 22
DELTA_WIDTH = 2
"""The delta regression uses frames ``t - 2 .. t + 2``."""
LOG_FLOOR = float(np.finfo(np.float32).eps)
"""Energies are floored here before the log (Kaldi's floor), so silence gives finite features."""

_PER_SUBFRAME = ("mfcc", "d", "dd")
FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{kind}{i}_{half}" for half in "ab" for kind in _PER_SUBFRAME for i in range(NUM_CEPS)
)
"""``mfcc0_a .. mfcc12_a, d0_a .. d12_a, dd0_a .. dd12_a``, then the same for the second half."""
NUM_FEATURES = len(FEATURE_NAMES)

_MIN_SAMPLES_PER_FRAME = 200

# --- synthesis settings ------------------------------------------------------------------------

NUM_HARMONICS = 40
SPEECH_LEVEL = 0.1
"""RMS of the output for ``energy = 1`` and a fully open mouth (before any peak limiting)."""
CLOSED_MOUTH_GAIN = 0.2
"""Loudness of a closed mouth relative to an open one; it rises linearly with jawOpen."""
ASPIRATION = 0.05
"""Aspiration noise RMS relative to the voiced part."""
_F1_HZ = (300.0, 800.0)  # (closed, open): the jaw lowers and the first formant rises
_B1_HZ = (80.0, 200.0)
_F2_HZ, _B2_HZ = 1500.0, 120.0
_F3_HZ, _B3_HZ = 2500.0, 200.0
_PEAK = 0.99
_CHUNK = 16384  # samples per block in the harmonic sum: keeps the (samples, harmonics) arrays small


# --- synthesis ---------------------------------------------------------------------------------


def synthesize(
    f0: np.ndarray,
    energy: np.ndarray,
    mouth_open: np.ndarray,
    *,
    fps: float = FPS,
    sample_rate: int = 16000,
    seed: int = 0,
) -> np.ndarray:
    """Voiced speech from per-frame prosody: float32 mono in [-1, 1], ``round(T * sr / fps)`` long.

    ``f0`` is in Hz (only read where ``energy > 0``), ``energy >= 0`` is a linear amplitude
    (0 = silence, exactly zero output away from the fade into a pause) and ``mouth_open`` in
    [0, 1] is the speaker's jawOpen. The source is a sum of harmonics of f0 with amplitudes 1/k
    and a phase integrated sample by sample, so f0 glides without clicks. Each harmonic is
    weighted by a cascade of three resonances whose first formant rises from 300 to 800 Hz (and
    widens) as the mouth opens; every frame's spectrum is normalised to unit RMS, then scaled by
    ``SPEECH_LEVEL * energy * (CLOSED_MOUTH_GAIN + (1 - CLOSED_MOUTH_GAIN) * mouth_open)``, so the
    loudness follows energy and jawOpen. Frame values sit at frame centres and are interpolated
    linearly to the audio rate. Seeded aspiration noise is added; a clip whose peak would exceed
    0.99 is scaled down as a whole.
    """
    f0, energy, mouth = _prosody(f0, energy, mouth_open)
    _check_rates(sample_rate, fps)
    num_frames = len(f0)
    n = round(num_frames * sample_rate / fps)
    nyquist = sample_rate / 2
    voiced = energy > 0
    if n == 0 or not voiced.any():
        return np.zeros(n, dtype=np.float32)
    if np.any(f0[voiced] >= nyquist):
        raise ValueError(f"f0 must stay below Nyquist ({nyquist:g} Hz) where energy > 0")

    # Silent frames take f0 from their voiced neighbours, so fades into pauses do not glide.
    centres = np.arange(num_frames)
    f0 = np.interp(centres, centres[voiced], f0[voiced])

    lo, frac = _frame_positions(n, num_frames, fps, sample_rate)
    f0_audio = _lerp(f0, lo, frac)
    phase = np.mod(2 * np.pi * np.cumsum(f0_audio / sample_rate), 2 * np.pi)

    weights = _harmonic_weights(f0, mouth, nyquist)
    voice = _harmonic_sum(phase, weights, lo, frac)
    noise = np.random.default_rng(seed).standard_normal(n)
    gain = SPEECH_LEVEL * energy * (CLOSED_MOUTH_GAIN + (1 - CLOSED_MOUTH_GAIN) * mouth)
    wav = _lerp(gain, lo, frac) * (voice + ASPIRATION * noise)

    peak = np.max(np.abs(wav))
    if peak > _PEAK:
        wav *= _PEAK / peak
    return wav.astype(np.float32)


def _prosody(f0, energy, mouth_open) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = []
    for name, x in (("f0", f0), ("energy", energy), ("mouth_open", mouth_open)):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1 or len(x) == 0:
            raise ValueError(f"{name} must be a non-empty 1-d array, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or infinite values")
        arrays.append(x)
    f0, energy, mouth = arrays
    if not len(f0) == len(energy) == len(mouth):
        raise ValueError(
            f"f0, energy and mouth_open must have the same length, got {len(f0)}, {len(energy)} "
            f"and {len(mouth)}"
        )
    if np.any(energy < 0):
        raise ValueError("energy must be >= 0 (0 means silence)")
    if np.any((mouth < 0) | (mouth > 1)):
        raise ValueError("mouth_open must lie in [0, 1]")
    if np.any(f0[energy > 0] <= 0):
        raise ValueError("f0 must be > 0 wherever energy > 0")
    return f0, energy, mouth


def _frame_positions(n: int, num_frames: int, fps: float, sample_rate: int):
    """For each audio sample: the frame whose centre precedes it and the fraction to the next."""
    pos = np.clip(np.arange(n) * (fps / sample_rate) - 0.5, 0, num_frames - 1)
    lo = np.floor(pos).astype(np.intp)
    return lo, pos - lo


def _lerp(frames: np.ndarray, lo: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Linear interpolation of per-frame values to the audio rate."""
    padded = np.concatenate([frames, frames[-1:]])  # lo + 1 may point one past the last frame
    return padded[lo] + frac * (padded[lo + 1] - padded[lo])


def _resonance(freq: np.ndarray, centre, bandwidth) -> np.ndarray:
    """Magnitude of a two-pole resonator (unit gain at 0 Hz, peak ``centre / bandwidth``)."""
    return centre**2 / np.sqrt((centre**2 - freq**2) ** 2 + (bandwidth * freq) ** 2)


def _harmonic_weights(f0: np.ndarray, mouth: np.ndarray, nyquist: float) -> np.ndarray:
    """Per-frame harmonic amplitudes ``(T, K)``, normalised so each frame's voice has unit RMS."""
    k = np.arange(1, NUM_HARMONICS + 1)
    freq = f0[:, None] * k
    f1 = (_F1_HZ[0] + (_F1_HZ[1] - _F1_HZ[0]) * mouth)[:, None]
    b1 = (_B1_HZ[0] + (_B1_HZ[1] - _B1_HZ[0]) * mouth)[:, None]
    # A ramp to zero over the top fifth of the band: harmonics fade out instead of aliasing.
    taper = np.clip((nyquist - freq) / (0.2 * nyquist), 0, 1)
    w = (
        taper
        / k
        * _resonance(freq, f1, b1)
        * _resonance(freq, _F2_HZ, _B2_HZ)
        * _resonance(freq, _F3_HZ, _B3_HZ)
    )
    rms = np.sqrt(0.5 * np.sum(w**2, axis=1, keepdims=True))
    return (w / rms).astype(np.float32)


def _harmonic_sum(phase, weights, lo, frac) -> np.ndarray:
    """``sum_k w_k(n) sin(k phase(n))``, the weights interpolated linearly between frames.

    Interpolating the sums instead of the weights is the same thing (it is linear) and lets one
    matrix product per block do the work: every sample against the few frames its block spans.
    """
    k = np.arange(1, weights.shape[1] + 1, dtype=np.float32)
    weights = np.concatenate([weights, weights[-1:]])  # lo + 1 may point one past the last frame
    rows = np.arange(_CHUNK)
    out = np.empty(len(phase))
    for start in range(0, len(phase), _CHUNK):
        block = slice(start, start + _CHUNK)
        first = lo[start]
        col = lo[block] - first
        sums = (
            np.sin(phase[block, None].astype(np.float32) * k)
            @ weights[first : col[-1] + first + 2].T
        )
        r = rows[: len(col)]
        out[block] = sums[r, col] + frac[block] * (sums[r, col + 1] - sums[r, col])
    return out


# --- WAV I/O -----------------------------------------------------------------------------------


def write_wav(path: str | Path, wav: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio in [-1, 1] as 16-bit PCM, atomically.

    Samples are scaled by 32768, the inverse of :func:`read_wav`, and clipped to the int16 range.
    """
    wav = np.asarray(wav)
    if wav.ndim != 1 or wav.dtype.kind != "f":
        raise ValueError(f"wav must be a 1-d float array, got {wav.dtype} of shape {wav.shape}")
    if not np.all(np.isfinite(wav)):
        raise ValueError("wav contains NaN or infinite values")
    _check_sample_rate(sample_rate)
    pcm = np.clip(np.round(wav * 32768.0), -32768, 32767).astype(np.int16)
    return paths.write_atomically(path, lambda tmp: scipy.io.wavfile.write(tmp, sample_rate, pcm))


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 mono and its sample rate, at whatever rate it was stored.

    Integer PCM is scaled to [-1, 1] (uint8 is centred on 128); float data is returned as stored.
    Several channels are averaged.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no WAV file at {path}")
    if not path.is_file():
        raise ValueError(f"cannot read {path} as WAV: it is not a file")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", scipy.io.wavfile.WavFileWarning)
            sample_rate, data = scipy.io.wavfile.read(path)
    except (ValueError, EOFError, struct.error) as err:
        raise ValueError(f"cannot read {path} as WAV: {err}") from err
    # scipy only warns when the data chunk is cut short; a partial clip must not pass as whole.
    for warning in caught:
        if "EOF" in str(warning.message):
            raise ValueError(f"cannot read {path} as WAV: truncated ({warning.message})")
    if data.size == 0:
        raise ValueError(f"cannot read {path} as WAV: it holds no samples")
    if data.dtype == np.uint8:
        audio = (data.astype(np.float64) - 128) / 128
    elif data.dtype.kind == "i":
        audio = data.astype(np.float64) / -np.iinfo(data.dtype).min
    elif data.dtype.kind == "f":
        audio = data.astype(np.float64)
    else:
        raise ValueError(f"cannot read {path} as WAV: unsupported sample type {data.dtype}")
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"cannot read {path} as WAV: it contains NaN or infinite samples")
    return audio.astype(np.float32), int(sample_rate)


# --- features ----------------------------------------------------------------------------------


def hz_to_mel(hz):
    """Kaldi's mel scale, ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=32)
def mel_filterbank(
    n_mels: int, n_fft: int, sample_rate: int, fmin: float = MEL_FMIN, fmax: float | None = None
) -> np.ndarray:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)`` over the rfft bins, Kaldi style.

    The triangles are equally spaced and overlap by half on the mel scale between ``fmin`` and
    ``fmax`` (Nyquist by default) and have unit peak, so between the first and last centre the
    filters sum to one. The result is cached and read-only.
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    if n_mels < 1 or n_fft < 2:
        raise ValueError(f"need n_mels >= 1 and n_fft >= 2, got {n_mels} and {n_fft}")
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(
            f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin={fmin}, fmax={fmax}, "
            f"sample_rate={sample_rate}"
        )
    edges = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    mel = hz_to_mel(np.arange(n_fft // 2 + 1) * sample_rate / n_fft)[None, :]
    bank = np.maximum(
        0.0, np.minimum((mel - left) / (centre - left), (right - mel) / (right - centre))
    )
    bank.flags.writeable = False
    return bank


def log_mel_frames(
    wav: np.ndarray, sample_rate: int, *, fps: float = FPS, num_frames: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Log energy ``(2T,)`` and log mel energies ``(2T, NUM_MELS)`` of the analysis frames.

    Sub-frame ``j`` covers samples ``[j, j + 1) * sr / fps / 2``; its window holds the
    ``int(0.025 * sr)`` samples centred there (start rounded half up), zeros beyond the signal.
    Per window, as Kaldi does: remove the mean; log energy of the result (Kaldi's raw energy,
    before pre-emphasis and window); pre-emphasis 0.97 (the first sample against itself); Povey
    window ``(0.5 - 0.5 cos(2 pi n / (L - 1)))^0.85``; power spectrum with ``n_fft`` the next
    power of two; :func:`mel_filterbank`; log with :data:`LOG_FLOOR`. There is no dither, so the
    features are deterministic.
    """
    audio = _mono(wav)
    _check_rates(sample_rate, fps)
    if num_frames is None:
        num_frames = int(len(audio) * fps // sample_rate)
    elif isinstance(num_frames, bool) or not isinstance(num_frames, int | np.integer):
        raise ValueError(f"num_frames must be an integer or None, got {num_frames!r}")
    elif num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")

    length = math.floor(sample_rate * WINDOW_SECONDS + 1e-9)  # 0.025 * sr may land just below
    n_fft = 1 << (length - 1).bit_length()
    half = sample_rate / fps / SUBFRAMES
    centres = (np.arange(SUBFRAMES * num_frames) + 0.5) * half
    starts = np.floor(centres - length / 2 + 0.5).astype(np.intp) + length  # + left padding
    right_pad = max(0, int(starts[-1]) - len(audio)) if len(starts) else 0
    padded = np.concatenate([np.zeros(length), audio, np.zeros(right_pad)])
    frames = sliding_window_view(padded, length)[starts]

    frames = frames - frames.mean(axis=1, keepdims=True)
    log_energy = np.log(np.maximum(np.sum(frames**2, axis=1), LOG_FLOOR))
    emphasised = np.concatenate(
        [frames[:, :1] * (1 - PREEMPHASIS), frames[:, 1:] - PREEMPHASIS * frames[:, :-1]], axis=1
    )
    power = np.abs(scipy.fft.rfft(emphasised * _povey(length), n=n_fft, axis=1)) ** 2
    mel = power @ mel_filterbank(NUM_MELS, n_fft, sample_rate).T
    return log_energy, np.log(np.maximum(mel, LOG_FLOOR))


def mfcc78(
    wav: np.ndarray, sample_rate: int, *, fps: float = FPS, num_frames: int | None = None
) -> np.ndarray:
    """REACT-baseline audio features ``(T, 78)`` float32, ordered as :data:`FEATURE_NAMES`.

    Two analysis frames per video frame (see :func:`log_mel_frames` for window, alignment and
    filterbank), each: DCT-II (orthonormal) of the log mel energies, first 13 kept, liftered with
    ``1 + 11 sin(pi i / 22)``, c0 replaced by the log energy (Kaldi ``use_energy``). Deltas and
    delta-deltas are taken over the 50 Hz sub-frame sequence (:func:`delta`). Per video frame:
    ``[mfcc, delta, delta-delta]`` of the first half, then of the second. ``T`` is ``num_frames``
    (audio padded with zeros or cut), else ``floor(len * fps / sr)``. Samples are in [-1, 1]
    rather than Kaldi's int16 scale, so c0 sits ``2 ln 32768`` below Kaldi's; c1..c12 match.
    A 2-d ``wav`` is ``(samples, channels)`` and is averaged to mono.
    """
    log_energy, log_mel = log_mel_frames(wav, sample_rate, fps=fps, num_frames=num_frames)
    ceps = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=1)[:, :NUM_CEPS]
    ceps *= 1 + (LIFTER / 2) * np.sin(np.pi * np.arange(NUM_CEPS) / LIFTER)
    ceps[:, 0] = log_energy
    d = delta(ceps)
    per_subframe = np.concatenate([ceps, d, delta(d)], axis=1)
    return per_subframe.reshape(-1, NUM_FEATURES).astype(np.float32)


def delta(features: np.ndarray, width: int = DELTA_WIDTH) -> np.ndarray:
    """Regression deltas along axis 0, ``sum_n n (x[t+n] - x[t-n]) / (2 sum_n n^2)`` for
    ``n = 1 .. width``, with the edge frames repeated."""
    features = np.asarray(features, dtype=np.float64)
    padded = np.concatenate([features[:1]] * width + [features] + [features[-1:]] * width)
    steps = len(features)
    out = np.zeros_like(features)
    for n in range(1, width + 1):
        out += n * (padded[width + n : width + n + steps] - padded[width - n : width - n + steps])
    return out / (2 * sum(n * n for n in range(1, width + 1)))


def features_for_clip(
    path: str | Path, num_frames: int | None = None, *, fps: float = FPS
) -> np.ndarray:
    """:func:`mfcc78` of a WAV file, at the file's own sample rate."""
    wav, sample_rate = read_wav(path)
    return mfcc78(wav, sample_rate, fps=fps, num_frames=num_frames)


@functools.lru_cache(maxsize=8)
def _povey(length: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / (length - 1))) ** 0.85


def _mono(wav) -> np.ndarray:
    audio = np.asarray(wav)
    if audio.dtype.kind != "f":
        raise ValueError(
            f"wav must hold floating-point samples in [-1, 1], got {audio.dtype} "
            "(read files with read_wav)"
        )
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if audio.ndim != 1:
        raise ValueError(f"wav must be 1-d, or 2-d (samples, channels), got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("wav contains NaN or infinite values")
    return audio.astype(np.float64)


def _check_sample_rate(sample_rate) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise ValueError(f"sample_rate must be an integer, got {sample_rate!r}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")


def _check_rates(sample_rate, fps) -> None:
    _check_sample_rate(sample_rate)
    if not (isinstance(fps, int | float | np.number) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if sample_rate / fps < _MIN_SAMPLES_PER_FRAME:
        raise ValueError(
            f"sample_rate / fps = {sample_rate}/{fps} gives fewer than {_MIN_SAMPLES_PER_FRAME} "
            "samples per video frame; use a higher sample rate"
        )
