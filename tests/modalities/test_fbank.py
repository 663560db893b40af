"""The Kaldi filterbank against a naive reference written from the Kaldi formulas.

The reference below shares no code with mmtok.modalities.audio.fbank: one Python loop over frames,
numpy's FFT per frame (itself checked against a direct DFT), mel banks built with an explicit
loop over (filter, FFT bin) as Kaldi's C++ ``MelBanks`` does, everything in float64.
"""

import math

import numpy as np
import pytest

from mmtok.modalities.audio.fbank import EPSILON, fbank, mel_banks, num_frames

SR = 16000
LOG_EPS = math.log(np.finfo(np.float32).eps)


# --------------------------------------------------------------------------------------
# the naive reference
# --------------------------------------------------------------------------------------


def ref_window(kind: str, size: int) -> np.ndarray:
    w = np.empty(size)
    for j in range(size):
        hann = 0.5 - 0.5 * math.cos(2 * math.pi * j / (size - 1))
        w[j] = {"hanning": hann, "hamming": 0.54 - 0.46 * math.cos(2 * math.pi * j / (size - 1)),
                "povey": hann ** 0.85, "rectangular": 1.0}[kind]
    return w


def ref_mel_banks(num_bins: int, fft_size: int, sr: float, low: float = 20.0,
                  high: float = 0.0) -> np.ndarray:
    def mel(f):
        return 1127.0 * math.log(1.0 + f / 700.0)

    if high <= 0:
        high += sr / 2
    delta = (mel(high) - mel(low)) / (num_bins + 1)
    banks = np.zeros((num_bins, fft_size // 2 + 1))
    for m in range(num_bins):
        left = mel(low) + m * delta
        centre = mel(low) + (m + 1) * delta
        right = mel(low) + (m + 2) * delta
        for k in range(fft_size // 2):  # the Nyquist bin keeps weight 0
            x = mel(k * sr / fft_size)
            if left < x < right:
                banks[m, k] = (x - left) / (centre - left) if x <= centre else (right - x) / (right - centre)
    return banks


def ref_fbank(wave, num_bins=128, sr=SR, window="hanning", preemph=0.97, dc=True,
              direct_dft_frames=()):
    size, shift = int(sr * 0.025), int(sr * 0.010)
    fft_size = 1
    while fft_size < size:
        fft_size *= 2
    banks = ref_mel_banks(num_bins, fft_size, sr)
    w = ref_window(window, size)
    frames = 1 + (len(wave) - size) // shift
    out = np.empty((frames, num_bins))
    for t in range(frames):
        f = np.array(wave[t * shift: t * shift + size], dtype=np.float64)
        if dc:
            f = f - f.mean()
        g = np.empty(size)
        for j in range(size):
            g[j] = f[j] - preemph * f[max(j - 1, 0)]
        h = np.zeros(fft_size)
        h[:size] = g * w
        spectrum = np.fft.rfft(h)
        if t in direct_dft_frames:  # the FFT used here is the DFT it stands for
            k = np.arange(fft_size // 2 + 1)[:, None]
            direct = (h[None, :] * np.exp(-2j * np.pi * k * np.arange(fft_size) / fft_size)).sum(1)
            np.testing.assert_allclose(spectrum, direct, atol=1e-9)
        power = spectrum.real ** 2 + spectrum.imag ** 2
        out[t] = np.log(np.maximum(banks @ power, np.finfo(np.float32).eps))
    return out


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Chirps, a harmonic stack with amplitude modulation, bursts of noise; float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.25 * np.sin(2 * np.pi * (150 * t + 350 * t ** 2))  # rising chirp
    x += 0.1 * np.sin(2 * np.pi * (6000 * t - 300 * t ** 2))  # falling chirp
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)  # syllable-like modulation
    for h in range(1, 20):
        x += envelope * 0.08 / h * np.sin(h * phase)
    x += 0.02 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 1.5 * t) > 0.5)
    return (0.8 * x / np.abs(x).max()).astype(np.float32)


# --------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------


def test_mel_banks_equal_the_loop_built_kaldi_banks():
    for bins, sr, fft in ((128, 16000.0, 512), (23, 16000.0, 512), (80, 8000.0, 256)):
        np.testing.assert_allclose(mel_banks(bins, fft, sr), ref_mel_banks(bins, fft, sr),
                                   atol=1e-12)
    assert mel_banks(128, 512, 16000.0)[:, -1].max() == 0  # Nyquist bin unused


def test_speech_like_signal_matches_the_reference_within_1e3():
    wave = speech_like(3.0)
    ours = fbank(wave)
    ref = ref_fbank(wave, direct_dft_frames=(0, 137))
    assert ours.shape == ref.shape == (1 + (len(wave) - 400) // 160, 128)
    assert ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-3
    assert np.median(np.abs(ours - ref)) < 1e-5  # exact up to float rounding, not merely close


@pytest.mark.parametrize("freq,amp", [(440.0, 0.9), (1000.0, 0.5), (3150.0, 0.05),
                                      (7000.0, 0.7)])
def test_pure_tones_match_the_reference_within_1e3(freq, amp):
    t = np.arange(int(0.8 * SR)) / SR
    wave = (amp * np.sin(2 * np.pi * freq * t + 0.3)).astype(np.float32)
    assert np.abs(fbank(wave) - ref_fbank(wave)).max() < 1e-3


@pytest.mark.parametrize("window,preemph,dc", [("hamming", 0.97, True), ("rectangular", 0.97, True),
                                               ("povey", 0.5, True), ("hamming", 0.0, False),
                                               ("rectangular", 1.0, True)])
def test_other_windows_and_options_match_the_reference(window, preemph, dc):
    # windows that are not zero at sample 0 make the first-sample pre-emphasis rule visible
    wave = speech_like(0.5, seed=1) + np.float32(0.05)  # with a DC offset
    ours = fbank(wave, window_type=window, preemphasis=preemph, remove_dc_offset=dc)
    ref = ref_fbank(wave, window=window, preemph=preemph, dc=dc)
    assert np.abs(ours - ref).max() < 1e-3


def test_a_pure_tone_lands_in_the_channel_whose_centre_is_nearest():
    # Above ~650 Hz the triangles are wider than the 31.25 Hz FFT bins. (Below, they are
    # narrower, and the loudest channel is whichever has the largest weight on the FFT bins
    # of the tone's main lobe; see docs/modalities/audio.md.)
    mel_low, mel_high = 1127 * math.log(1 + 20 / 700), 1127 * math.log(1 + 8000 / 700)
    delta = (mel_high - mel_low) / 129

    def centre(m: float) -> float:
        return 700 * (math.exp((mel_low + (m + 1) * delta) / 1127) - 1)

    centres = np.array([centre(m) for m in range(128)])
    t = np.arange(SR // 2) / SR
    for m in (33, 40, 57, 64, 80, 99, 110, 126):
        for offset in (-0.25, 0.0, 0.25):
            freq = centre(m + offset)
            out = fbank(0.5 * np.sin(2 * np.pi * freq * t))
            loudest = np.bincount(out.argmax(axis=1)).argmax()
            assert loudest == np.abs(centres - freq).argmin() == m, (m, offset, freq)


@pytest.mark.parametrize("n", [399, 400, 401, 559, 560, 561, 16000, 163840])
def test_frame_count_is_kaldis_snip_edges_formula(n):
    expected = 0 if n < 400 else 1 + (n - 400) // 160
    assert num_frames(n, 400, 160) == expected
    assert fbank(np.zeros(n, np.float32)).shape == (expected, 128)
    assert fbank(np.zeros(n), frame_shift_ms=12.5).shape == (
        0 if n < 400 else 1 + (n - 400) // 200, 128)


def test_one_channel_covers_no_fft_bin_and_stays_at_log_eps():
    # REFERENCE.md: at 16 kHz, 128 bins, 512-point FFT one Kaldi triangle falls between two
    # FFT bins. It is channel 3 (mel 97.05..140.6 = 62.6..94.1 Hz, while the bins sit at
    # 62.5 Hz = mel 96.9 and 93.75 Hz = mel 141.7): its energy is always 0 -> log(eps).
    empty = np.flatnonzero(ref_mel_banks(128, 512, 16000.0).sum(axis=1) == 0)
    assert empty.tolist() == [3]
    assert np.flatnonzero(mel_banks(128, 512, 16000.0).sum(axis=1) == 0).tolist() == [3]
    loud = fbank(speech_like(1.0) + np.random.default_rng(5).standard_normal(SR) * 0.3)
    assert np.all(loud[:, 3] == np.float32(LOG_EPS))
    assert np.all(loud[:, [2, 4]] > LOG_EPS + 1)  # its neighbours see the signal
    # fewer bins: every triangle catches at least one FFT bin
    assert (mel_banks(64, 512, 16000.0).sum(axis=1) > 0).all()


def test_silence_is_log_eps_everywhere_and_floor_is_float32_epsilon():
    assert EPSILON == np.finfo(np.float32).eps
    assert np.all(fbank(np.zeros(2000)) == np.float32(LOG_EPS))


def test_a_constant_offset_changes_nothing():
    # DC removal per frame makes AST's "waveform - waveform.mean()" a no-op in exact
    # arithmetic; only rounding remains.
    wave = speech_like(1.0, seed=2).astype(np.float64)
    np.testing.assert_allclose(fbank(wave + 0.3), fbank(wave), atol=1e-4)


def test_int16_scale_adds_twice_log_32768_above_the_floor():
    wave = speech_like(1.0, seed=3)
    scaled, unit = fbank(wave.astype(np.float64) * 32768), fbank(wave)
    above = unit > LOG_EPS + 1
    np.testing.assert_allclose(scaled[above] - unit[above], 2 * math.log(32768), atol=1e-4)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="1-D"):
        fbank(np.zeros((2, 1000)))
    with pytest.raises(ValueError, match="window_type"):
        fbank(np.zeros(1000), window_type="kaiser")
    with pytest.raises(ValueError, match="preemphasis"):
        fbank(np.zeros(1000), preemphasis=1.5)
    with pytest.raises(ValueError, match="low_freq"):
        fbank(np.zeros(1000), low_freq=9000)


def test_analysing_frames_in_blocks_never_changes_the_result():
    """fbank works through blocks of frames (a cache-sized working set); every frame's
    arithmetic is the same, so any block size gives the same bits as one block."""
    rng = np.random.default_rng(11)
    for samples in (400, 16000 + 123, 164080):
        wave = (0.1 * rng.standard_normal(samples)).astype(np.float32)
        whole = fbank(wave, block_frames=None)
        for block in (1, 7, 128, 10 ** 6):
            np.testing.assert_array_equal(fbank(wave, block_frames=block), whole)
