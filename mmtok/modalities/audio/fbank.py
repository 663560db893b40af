"""Kaldi-compatible log-mel filterbank (``compute-fbank-feats``) in numpy.

The semantics are those of ``torchaudio.compliance.kaldi.fbank`` (itself a port of Kaldi's
``FbankComputer``) with ``snip_edges=True``, ``dither=0``, ``use_energy=False``,
``use_power=True``, ``use_log_fbank=True``, ``subtract_mean=False`` and no VTLN warping; the
AST front end additionally passes ``htk_compat=True`` (which only moves the energy column, so
without energy it changes nothing) and ``window_type='hanning'``. For a waveform ``x`` of
``n`` samples, window ``N`` (25 ms), shift ``S`` (10 ms) and FFT size ``P`` (``N`` rounded up
to a power of two), frame ``t`` of ``T = 1 + (n - N) // S`` frames is computed as:

1. ``f[j] = x[t*S + j]`` for ``j = 0 .. N-1``;
2. DC removal: ``f[j] -= mean(f)``;
3. pre-emphasis (first sample against itself, as Kaldi): ``g[j] = f[j] - p * f[max(j-1, 0)]``;
4. window: ``h[j] = g[j] * w[j]``, Kaldi ``hanning`` ``w[j] = 0.5 - 0.5 cos(2 pi j / (N-1))``;
5. power spectrum of ``h`` zero-padded to ``P``: ``|rfft(h)[k]|^2`` for ``k = 0 .. P/2``;
6. mel energies ``E[m] = sum_k B[m, k] |H[k]|^2`` with Kaldi's mel banks (:func:`mel_banks`:
   triangles of equal width in the mel domain ``mel(f) = 1127 ln(1 + f/700)``, between
   ``low_freq`` and ``high_freq``; the Nyquist bin has weight 0);
7. ``log(max(E[m], eps))`` with ``eps = float32 epsilon = 1.1920929e-07``.

The fast path below is vectorised over frames and exact up to float64 rounding (the output
is float32). It rewrites steps 2-3 so that no per-frame loop is needed: with the frame mean
``m`` and ``e = x[i] - p * x[i-1]`` pre-emphasised once over the whole waveform,
``g[j] = e[t*S + j] - (1 - p) m`` for ``j >= 1`` and ``g[0] = (1 - p)(x[t*S] - m)``. So a
strided view of ``e`` times the window, plus a rank-1 update ``-(1 - p) m w`` (one BLAS
``dger``), gives every windowed frame; frame means come from block sums. The FFT is numpy's
float64 ``rfft`` (a float32 FFT is twice as fast, but its round-off moves the weak mel
channels by up to ~5e-3 in the log domain on speech-like signals and loud tones, beyond the
1e-3 we promise); the mel product is a sparse matrix (each FFT bin
feeds at most two triangles); the log is taken in float32, as Kaldi does.

Scale: the waveform is float in [-1, 1] (what ``torchaudio.load`` and ``soundfile`` return
for integer PCM); Kaldi's command-line tools read int16 values instead, whose energies are
32768^2 times larger (+20.79 in the log domain, except where the floor applies).
"""

from __future__ import annotations

import functools
import math
import threading
from typing import NamedTuple

import numpy as np

__all__ = ["EPSILON", "WINDOW_TYPES", "fbank", "feature_window", "frame_geometry",
           "mel_banks", "mel_scale", "inverse_mel_scale", "num_frames"]

EPSILON = float(np.finfo(np.float32).eps)  # 1.1920928955078125e-07, Kaldi's log floor
WINDOW_TYPES = ("hanning", "hamming", "povey", "rectangular", "blackman")


def mel_scale(freq):
    """Kaldi/HTK mel scale: ``1127 ln(1 + f / 700)`` (float or array)."""
    return 1127.0 * np.log1p(np.asarray(freq, dtype=np.float64) / 700.0)


def inverse_mel_scale(mel):
    """Inverse of :func:`mel_scale`: ``700 (exp(mel / 1127) - 1)``."""
    return 700.0 * np.expm1(np.asarray(mel, dtype=np.float64) / 1127.0)


def frame_geometry(sample_rate: float, frame_length_ms: float = 25.0,
                   frame_shift_ms: float = 10.0,
                   round_to_power_of_two: bool = True) -> tuple[int, int, int]:
    """(window size N, window shift S, FFT size P) in samples, computed as Kaldi does:
    ``int(sample_rate * ms * 0.001)``; ``P`` is ``N`` rounded up to a power of two."""
    size = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    if size < 2 or shift < 1:
        raise ValueError(f"frame length {frame_length_ms} ms / shift {frame_shift_ms} ms at "
                         f"{sample_rate} Hz give a window of {size} and a shift of {shift} "
                         "samples; need at least 2 and 1")
    padded = 1 << (size - 1).bit_length() if round_to_power_of_two else size
    if padded % 2:
        raise ValueError(f"the FFT size {padded} must be even: use round_to_power_of_two "
                         "or another frame length")
    return size, shift, padded


def num_frames(num_samples: int, window_size: int, window_shift: int) -> int:
    """Kaldi's frame count with ``snip_edges=True``: ``1 + (n - N) // S``, 0 when ``n < N``."""
    if num_samples < window_size:
        return 0
    return 1 + (num_samples - window_size) // window_shift


@functools.lru_cache(maxsize=16)
def feature_window(window_type: str, size: int, blackman_coeff: float = 0.42) -> np.ndarray:
    """Kaldi's window of ``size`` samples (float64, read-only). All are symmetric (the
    denominator is ``N - 1``): hanning ``0.5 - 0.5 cos(a j)``, hamming ``0.54 - 0.46 cos(a j)``,
    povey ``hanning ** 0.85``, blackman ``c - 0.5 cos(a j) + (0.5 - c) cos(2 a j)``,
    rectangular ones; ``a = 2 pi / (N - 1)``."""
    j = np.arange(size, dtype=np.float64)
    a = 2.0 * math.pi / (size - 1)
    if window_type == "hanning":
        window = 0.5 - 0.5 * np.cos(a * j)
    elif window_type == "hamming":
        window = 0.54 - 0.46 * np.cos(a * j)
    elif window_type == "povey":
        window = (0.5 - 0.5 * np.cos(a * j)) ** 0.85
    elif window_type == "rectangular":
        window = np.ones(size)
    elif window_type == "blackman":
        window = (blackman_coeff - 0.5 * np.cos(a * j)
                  + (0.5 - blackman_coeff) * np.cos(2.0 * a * j))
    else:
        raise ValueError(f"unknown window_type {window_type!r}; choose one of "
                         f"{', '.join(WINDOW_TYPES)}")
    window.setflags(write=False)
    return window


@functools.lru_cache(maxsize=16)
def mel_banks(num_bins: int, padded_size: int, sample_rate: float, low_freq: float = 20.0,
              high_freq: float = 0.0) -> np.ndarray:
    """Kaldi's ``MelBanks`` as a (num_bins, padded_size // 2 + 1) float64 matrix (read-only).

    ``high_freq <= 0`` means ``nyquist + high_freq``. With ``d = (mel(high) - mel(low)) /
    (num_bins + 1)``, triangle ``m`` has left/centre/right edges ``mel(low) + (m, m+1, m+2) d``
    and FFT bin ``k`` (frequency ``k * sample_rate / padded_size``, ``k < padded_size / 2``)
    gets ``max(0, min((mel_k - left) / d, (right - mel_k) / d))``; the last column (Nyquist)
    is zero. These are triangles in the mel domain, not librosa's Slaney (Hz-domain) ones.
    """
    if num_bins <= 3:
        raise ValueError(f"need more than 3 mel bins, not {num_bins}")
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(f"bad low_freq {low_freq} / high_freq {high_freq} for nyquist {nyquist}")
    fft_bin_width = sample_rate / padded_size
    mel_low, mel_high = float(mel_scale(low_freq)), float(mel_scale(high_freq))
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = np.arange(num_bins, dtype=np.float64)[:, None]
    left, centre, right = mel_low + b * delta, mel_low + (b + 1.0) * delta, mel_low + (b + 2.0) * delta
    mel = mel_scale(fft_bin_width * np.arange(padded_size // 2, dtype=np.float64))[None, :]
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    banks = np.zeros((num_bins, padded_size // 2 + 1))
    banks[:, :-1] = np.maximum(0.0, np.minimum(up, down))
    banks.setflags(write=False)
    return banks


class _Plan(NamedTuple):
    size: int  # window N
    shift: int  # hop S
    padded: int  # FFT size P
    window_padded: np.ndarray  # (P,) window, zeros after N
    w0: float  # window[0]
    banks: object  # scipy.sparse CSR (num_bins, P // 2 + 1) float32
    block: int  # gcd(N, S): frame sums come from sums of blocks of this many samples


@functools.lru_cache(maxsize=16)
def _plan(sample_rate: float, num_mel_bins: int, frame_length_ms: float, frame_shift_ms: float,
          low_freq: float, high_freq: float, window_type: str, round_to_power_of_two: bool,
          blackman_coeff: float) -> _Plan:
    import scipy.sparse  # scipy comes with librosa; imported here to keep import time low

    size, shift, padded = frame_geometry(sample_rate, frame_length_ms, frame_shift_ms,
                                         round_to_power_of_two)
    window = feature_window(window_type, size, blackman_coeff)
    window_padded = np.zeros(padded)
    window_padded[:size] = window
    banks = scipy.sparse.csr_matrix(mel_banks(num_mel_bins, padded, sample_rate, low_freq,
                                              high_freq).astype(np.float32))
    return _Plan(size, shift, padded, window_padded, float(window[0]), banks,
                 math.gcd(size, shift))


_workspaces = threading.local()


class _Workspace(NamedTuple):
    x: np.ndarray  # (used,) float64 copy of the waveform
    e: np.ndarray  # (used,) pre-emphasised waveform
    frames: np.ndarray  # (block, P) windowed frames; columns N: stay zero
    spectrum: np.ndarray  # (block, P/2 + 1) complex128
    power: np.ndarray  # (block, P/2 + 1) float64
    power_t: np.ndarray  # (P/2 + 1, block) float32


# Frames analysed together: the block's scratch arrays (~1.3 MB at 128 frames of a 512-point
# FFT) stay in a core's cache, where a whole 10 s clip's (~11 MB) did not; on a busy machine
# whose last-level cache other processes share, that made the filterbank several times
# slower. Every frame's arithmetic is the same whatever the block, so the result is too.
BLOCK_FRAMES = 128


def _workspace(frames: int, used: int, size: int, padded: int) -> _Workspace:
    """Scratch arrays for one (block) frame count, reused per thread: allocating (and
    page-faulting) fresh arrays per clip costs as much as the FFT itself."""
    cache = getattr(_workspaces, "cache", None)
    if cache is None:
        cache = _workspaces.cache = {}
    key = (frames, used, size, padded)
    ws = cache.get(key)
    if ws is None:
        if len(cache) >= 4:  # clips of many lengths: keep the memory bounded
            cache.clear()
        bins = padded // 2 + 1
        ws = cache[key] = _Workspace(
            np.empty(used), np.empty(used), np.zeros((frames, padded)),
            np.empty((frames, bins), np.complex128), np.empty((frames, bins)),
            np.empty((bins, frames), np.float32))
    return ws


def fbank(
    waveform: np.ndarray,
    sample_rate: float = 16000.0,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    preemphasis: float = 0.97,
    remove_dc_offset: bool = True,
    window_type: str = "hanning",
    round_to_power_of_two: bool = True,
    blackman_coeff: float = 0.42,
    block_frames: int | None = BLOCK_FRAMES,
) -> np.ndarray:
    """Kaldi log-mel filterbank of a mono waveform; returns (frames, num_mel_bins) float32.

    Args:
        waveform: 1-D array of samples, float in [-1, 1] for AST's statistics (any real
            dtype; computed in float64).
        sample_rate: samples per second of ``waveform`` (no resampling happens here).
        num_mel_bins, low_freq, high_freq: the mel banks (:func:`mel_banks`).
        frame_length_ms, frame_shift_ms, round_to_power_of_two: :func:`frame_geometry`.
        preemphasis: coefficient ``p`` in [0, 1]; remove_dc_offset: subtract frame means.
        window_type, blackman_coeff: :func:`feature_window`.
        block_frames: frames analysed at once (None: all); speed only, never the result.

    Returns:
        ``1 + (n - N) // S`` frames (0 when the waveform is shorter than one window), in
        Kaldi's (frame, mel) layout; the array may be a transposed view of a C-contiguous
        (num_mel_bins, frames) array (``.T`` of the result is then contiguous).
    """
    if not 0.0 <= preemphasis <= 1.0:
        raise ValueError(f"preemphasis must be in [0, 1], not {preemphasis}")
    plan = _plan(float(sample_rate), int(num_mel_bins), float(frame_length_ms),
                 float(frame_shift_ms), float(low_freq), float(high_freq), window_type,
                 bool(round_to_power_of_two), float(blackman_coeff))
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f"waveform must be 1-D (mix channels first), got shape {x.shape}")
    N, S, P = plan.size, plan.shift, plan.padded
    T = num_frames(len(x), N, S)
    if T == 0:
        return np.zeros((0, num_mel_bins), dtype=np.float32)
    used = (T - 1) * S + N  # samples that some frame covers
    block = T if block_frames is None else max(1, min(int(block_frames), T))
    ws = _workspace(block, used, N, P)
    x = ws.x
    np.copyto(x, np.asarray(waveform)[:used], casting="unsafe")  # to float64
    p = float(preemphasis)

    # Pre-emphasis once over the whole signal: e[i] = x[i] - p x[i-1] (e[0] is never read
    # as a frame's first sample: column 0 is set below).
    e = ws.e
    np.multiply(x[:-1], -p, out=e[1:])
    e[1:] += x[1:]
    e[0] = x[0]
    frames = np.lib.stride_tricks.as_strided(e, (T, N), (S * e.itemsize, e.itemsize),
                                             writeable=False)
    starts = x[: (T - 1) * S + 1 : S]
    means = None
    if remove_dc_offset and p != 1.0:
        # frame means from block sums: blocks of gcd(N, S) samples tile every frame
        g = plan.block
        sums = np.concatenate(([0.0], np.cumsum(x.reshape(-1, g).sum(axis=1))))
        first = np.arange(T) * (S // g)
        means = (sums[first + N // g] - sums[first]) / N
    energies = np.empty((num_mel_bins, T), np.float32)
    for t0 in range(0, T, block):
        t1 = min(t0 + block, T)
        _frames_to_energies(frames[t0:t1], starts[t0:t1],
                            None if means is None else means[t0:t1], p, plan, ws,
                            energies[:, t0:t1])
    np.maximum(energies, np.float32(EPSILON), out=energies)
    np.log(energies, out=energies)
    return energies.T


def _frames_to_energies(frames: np.ndarray, starts: np.ndarray, means: np.ndarray | None,
                        p: float, plan: _Plan, ws: _Workspace, out: np.ndarray) -> None:
    """Mel energies (mel, n) of ``n`` pre-emphasised frames into ``out``: window, DC and
    first-sample corrections, power spectrum, mel banks (steps 2-6)."""
    n, N = len(frames), plan.size
    buf = ws.frames[:n]
    np.multiply(frames, plan.window_padded[:N], out=buf[:, :N])
    buf[:, 0] = (1.0 - p) * starts * plan.w0  # g[0] = (1 - p)(x0 - m); -(1-p) m w0 comes below
    if means is not None:
        # buf -= outer((1 - p) * means, window) in place: BLAS dger on the Fortran view
        from scipy.linalg.blas import dger

        result = dger(-(1.0 - p), plan.window_padded, means, a=buf.T, overwrite_a=1)
        if not np.shares_memory(result, buf):  # not expected; keeps the result right anyway
            buf[...] = result.T
    spectrum = np.fft.rfft(buf, axis=1, out=ws.spectrum[:n])  # (n, P/2 + 1) complex128
    # |X|^2 = re^2 + im^2, squared in place on the float64 view of the spectrum
    pairs = spectrum.view(np.float64)
    np.square(pairs, out=pairs)
    power = ws.power[:n]
    np.add(pairs[:, 0::2], pairs[:, 1::2], out=power)
    # float32 from here on (sums of non-negative terms: relative precision is kept), in the
    # (bin, frame) layout the sparse product wants; each FFT bin feeds at most two triangles
    power_t = ws.power_t[:, :n]
    np.copyto(power_t, power.T, casting="same_kind")
    out[...] = plan.banks @ power_t  # (mel, n) float32
