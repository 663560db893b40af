"""The ``audio`` modality: any audio file -> Kaldi log-mel filterbank, stored normalised;
AST patches are cut from it at embed time.

Reader: soundfile (libsndfile) decodes WAV (8/16/24/32-bit integer, 32/64-bit float), FLAC,
OGG (Vorbis, Opus), MP3 (libsndfile >= 1.1, bundled with soundfile >= 0.12 wheels), AIFF and
AU at any sample rate and channel count. Channels are averaged to mono and the result is
resampled to ``sample_rate`` with soxr (quality ``HQ``, what librosa uses). Only the span of
the file that a sample needs is decoded (plus a margin for the resampler), so cutting the
first 10.24 s of an hour-long file reads 10.3 s of it. Length limits come from the header,
before any decoding.

Tokenizer, as AST (Gong et al. 2021): waveform minus its mean -> Kaldi fbank
(:mod:`mmtok.modalities.audio.fbank`: 25 ms Hanning window, 10 ms shift, 128 mel bins, pre-emphasis
0.97, DC removal, no dither, no energy) -> (target_frames, mel) padded with zeros in the
log-mel domain or cut -> ``(x - mean) / (2 * std)`` -> stored as ``tokens``: the
(target_frames, num_mel_bins) float16 spectrogram in Kaldi's (frame, mel) layout, with its
true frame count in ``length`` (1024 x 128 x 2 bytes = 256 KiB for a 10.24 s clip). The
filterbank runs on the real samples only; padding frames are one constant row (zero in the
log-mel domain, normalised), written without computing anything. The embed step's projector
cuts AST's overlapping 16x16 patches with stride 10 in (frequency row, time column) order
(``Conv2d(1, 768, 16, stride=10)``: 12 x 101 = 1212 patches of 256 values at 1024 frames)
from the stored spectrogram: the same values the patch-storing layout 1 stored, at 0.42x
its size.

Presets (``--set preset=NAME``), after AST's recipes: ``audioset`` (1024 frames, AudioSet
statistics; the default), ``esc50`` (512 frames, ESC-50 statistics) and ``speechcommands``
(128 frames, Speech Commands statistics).

Long clips: ``long_clips="cut"`` keeps the first ``target_frames`` frames (one sample per
file); ``"split"`` makes every ``target_frames`` block of the file's frame sequence its own
sample, with ids ``FILE#t=START-END`` (seconds, two decimals).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import soundfile as sf

from ...errors import SampleError, UsageError
from ...kernels.patchify import patch_grid
from ...store.layout import ArraySpec
from ..base import Tokenizer
from ..files import check_input_file
from .fbank import WINDOW_TYPES, fbank, frame_geometry, mel_banks, num_frames

EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au")
AUDIOSET_MEAN = -4.2677393  # AST's AudioSet statistics of the log-mel fbank
AUDIOSET_STD = 4.5689974
# Layout of an audio token store: 1 held AST patches (mmtok 0.1.0 before the spectrogram
# store), 2 holds the normalised spectrogram and its length (patches are cut at embed).
STORE_LAYOUT = 2
PRESETS = {  # AST's per-data-set target lengths and fbank statistics (mean, std)
    "audioset": {"target_frames": 1024, "mean": AUDIOSET_MEAN, "std": AUDIOSET_STD},
    "esc50": {"target_frames": 512, "mean": -6.6268077, "std": 5.358466},
    "speechcommands": {"target_frames": 128, "mean": -6.845978, "std": 5.5654526},
}
RESAMPLE_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")
# containers whose 16-bit PCM is read as integers and scaled in numpy (_read_float32); a
# compressed format (FLAC) costs its decoding either way
UNCOMPRESSED_FORMATS = frozenset({"WAV", "WAVEX", "W64", "RF64", "AIFF", "AU", "CAF"})
RESAMPLE_MARGIN_SECONDS = 0.1  # extra input decoded on each side of a span before resampling
PART = re.compile(r"t=(\d+\.\d{2})-(\d+\.\d{2})")


@dataclass(frozen=True)
class AudioConfig:
    modality: str = "audio"
    preset: str = "audioset"  # the preset the target length and statistics came from
    sample_rate: int = 16000
    num_mel_bins: int = 128
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    target_frames: int = 1024
    long_clips: str = "cut"  # "cut": first window only; "split": every window is a sample
    mean: float = AUDIOSET_MEAN
    std: float = AUDIOSET_STD  # tokens are (fbank - mean) / (2 * std), as AST
    patch: int = 16
    stride: int = 10
    max_seconds: float = 3600.0
    low_freq: float = 20.0
    high_freq: float = 0.0  # <= 0: offset from Nyquist (0 = Nyquist)
    preemphasis: float = 0.97
    window_type: str = "hanning"
    resample_quality: str = "HQ"
    layout: int = STORE_LAYOUT  # what the store holds (see STORE_LAYOUT); not a user choice

    def __post_init__(self) -> None:
        problems = []
        if self.preset not in PRESETS:
            problems.append(f"preset must be one of {', '.join(PRESETS)}, not {self.preset!r}")
        if self.layout != STORE_LAYOUT:
            problems.append(f"layout must be {STORE_LAYOUT} (this mmtok's audio store layout), "
                            f"not {self.layout}")
        if self.sample_rate <= 0:
            problems.append(f"sample_rate must be positive, not {self.sample_rate}")
        else:
            try:
                _, _, padded = frame_geometry(self.sample_rate, self.frame_length_ms,
                                              self.frame_shift_ms)
                mel_banks(self.num_mel_bins, padded, float(self.sample_rate),
                          float(self.low_freq), float(self.high_freq))
            except ValueError as exc:
                problems.append(str(exc))
        if self.patch <= 0 or self.stride <= 0:
            problems.append(f"patch {self.patch} and stride {self.stride} must be positive")
        elif min(self.num_mel_bins, self.target_frames) < self.patch:
            problems.append(f"num_mel_bins {self.num_mel_bins} and target_frames "
                            f"{self.target_frames} must be at least patch {self.patch}")
        if self.long_clips not in ("cut", "split"):
            problems.append(f"long_clips must be 'cut' or 'split', not {self.long_clips!r}")
        if not self.std > 0 or not math.isfinite(self.mean):
            problems.append(f"std must be positive and mean finite (mean {self.mean}, "
                            f"std {self.std})")
        if not self.max_seconds > 0:
            problems.append(f"max_seconds must be positive, not {self.max_seconds}")
        if not 0.0 <= self.preemphasis <= 1.0:
            problems.append(f"preemphasis must be in [0, 1], not {self.preemphasis}")
        if self.window_type not in WINDOW_TYPES:
            problems.append(f"window_type must be one of {', '.join(WINDOW_TYPES)}")
        if self.resample_quality not in RESAMPLE_QUALITIES:
            problems.append(f"resample_quality must be one of {', '.join(RESAMPLE_QUALITIES)}")
        if problems:
            raise UsageError("; ".join(problems))

    @property
    def geometry(self) -> tuple[int, int, int]:
        """(window N, shift S, FFT size P) in samples at ``sample_rate``."""
        return frame_geometry(self.sample_rate, self.frame_length_ms, self.frame_shift_ms)

    @property
    def window_samples(self) -> int:
        """Samples that ``target_frames`` frames cover: ``(target_frames - 1) * S + N``."""
        size, shift, _ = self.geometry
        return (self.target_frames - 1) * shift + size

    @property
    def window_hop(self) -> int:
        """Samples between the starts of consecutive split windows: ``target_frames * S``."""
        return self.target_frames * self.geometry[1]


# --------------------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioInfo:
    frames: int  # samples per channel, from the header
    sample_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def open_audio(path: str, max_seconds: float) -> tuple[sf.SoundFile, AudioInfo]:
    """Open one file and check its header; every file problem becomes a SampleError.

    Returns the open handle (the caller closes it) and the header facts.
    """
    check_input_file(path)
    try:
        # bytes: soundfile encodes a str path strictly, and a non-UTF-8 file name (held as
        # surrogate escapes) would fail to open
        handle = sf.SoundFile(os.fsencode(path))
    except sf.LibsndfileError as exc:
        raise SampleError("decode_error", f"not an audio file libsndfile "
                          f"{sf.__libsndfile_version__} can open: {exc.error_string}") from None
    except Exception as exc:  # noqa: BLE001 - any header parser failure is this file's problem
        raise SampleError("decode_error", f"{type(exc).__name__}: {exc}") from None
    info = AudioInfo(int(handle.frames), int(handle.samplerate), int(handle.channels))
    problem = None
    if info.sample_rate <= 0 or info.channels <= 0:
        problem = SampleError("decode_error", f"header declares {info.sample_rate} Hz, "
                              f"{info.channels} channel(s)")
    elif info.frames <= 0:
        problem = SampleError("empty_audio", "the file holds no audio samples (a header only)")
    elif info.seconds > max_seconds:
        problem = SampleError("too_long", f"{info.seconds:.1f} s exceeds max_seconds "
                              f"{max_seconds:g}; raise it with --set max_seconds=...")
    if problem is not None:
        handle.close()
        raise problem
    return handle, info


def probe(path: str, max_seconds: float) -> AudioInfo:
    """Header facts of one file (see :func:`open_audio`), without decoding any sample."""
    handle, info = open_audio(path, max_seconds)
    handle.close()
    return info


def read_span(handle: sf.SoundFile, info: AudioInfo, start: int, stop: int, sample_rate: int,
              quality: str = "HQ") -> np.ndarray:
    """Mono float32 samples ``start:stop`` of the open file resampled to ``sample_rate``.

    Only the matching input span is decoded, widened by RESAMPLE_MARGIN_SECONDS on each side
    and aligned so that output sample ``k`` of the piece is output sample ``offset + k`` of
    the whole file (the input start is a multiple of ``sr_in / gcd(sr_in, sample_rate)``):
    the result equals resampling the whole file and slicing, up to float32 rounding. It is
    shorter at the end of the file.
    """
    sr_in = info.sample_rate
    if sr_in == sample_rate:
        begin, end, offset = start, min(stop, info.frames), start
    else:
        common = math.gcd(sr_in, sample_rate)
        unit_in, unit_out = sr_in // common, sample_rate // common
        margin = math.ceil(RESAMPLE_MARGIN_SECONDS * sr_in)
        units = max(0, (start * sr_in // sample_rate - margin) // unit_in)
        begin, offset = units * unit_in, units * unit_out
        end = min(info.frames, -(-stop * sr_in // sample_rate) + margin)
    if end <= begin:
        return np.zeros(0, np.float32)
    try:
        if begin:
            handle.seek(begin)
        data = _read_float32(handle, end - begin)
    except Exception as exc:  # noqa: BLE001 - a decoder failure mid-stream is this file's problem
        raise SampleError("decode_error", f"{type(exc).__name__}: {exc}", stage="decode") from None
    mono = _mix_to_mono(data)
    if not np.isfinite(mono).all():
        raise SampleError("nan_audio", "the audio holds NaN or infinite samples", stage="decode")
    if sr_in != sample_rate and len(mono):
        import soxr

        mono = soxr.resample(mono, sr_in, sample_rate, quality=quality)
    return mono[start - offset: stop - offset]


def _read_float32(handle: sf.SoundFile, frames: int) -> np.ndarray:
    """The next ``frames`` frames as (frames, channels) float32 in [-1, 1], as libsndfile
    reads them. Uncompressed 16-bit PCM is read as int16 and scaled here: libsndfile's float
    of a 16-bit sample is ``x * 2**-15``, exact in float32, so these are the same bits, at a
    quarter of the cost (its conversion loop took 0.36 ms of a 10 s clip's 0.45 ms read)."""
    if handle.subtype == "PCM_16" and handle.format in UNCOMPRESSED_FORMATS:
        data = handle.read(frames, dtype="int16", always_2d=True).astype(np.float32)
        data *= np.float32(2.0 ** -15)
        return data
    return handle.read(frames, dtype="float32", always_2d=True)


def _mix_to_mono(data: np.ndarray) -> np.ndarray:
    """The mean of the channels of (samples, channels) float32 ``data``. For stereo,
    ``(left + right) * 0.5``: the same bits as ``data.mean(axis=1, dtype=float32)`` (a sum
    of two, halved exactly), 40x faster (numpy reduces a 2-wide inner axis element by
    element, which cost more than resampling a 44.1 kHz clip)."""
    channels = data.shape[1]
    if channels == 1:
        return data[:, 0]
    if channels == 2:
        mono = data[:, 0] + data[:, 1]
        mono *= np.float32(0.5)
        return mono
    return data.mean(axis=1, dtype=np.float32)


# --------------------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------------------


class AudioTokenizer(Tokenizer):
    extensions = EXTENSIONS

    def statistics_from(self, paths: list[str]) -> dict:
        """The data set's own fbank mean and std (``tokenize --stats-from-data``)."""
        return statistics_overrides(self, paths)

    def __init__(self, config: AudioConfig) -> None:
        self.config = config
        self.size, self.shift, _ = config.geometry
        self.grid = patch_grid(config.num_mel_bins, config.target_frames,
                               (config.patch, config.patch), (config.stride, config.stride))
        # a padding frame: zero in the log-mel domain (AST's ZeroPad2d), then normalised
        self.pad_value = to_float16(
            (np.zeros(1, np.float32) - np.float32(config.mean)) / np.float32(2.0 * config.std))[0]

    # The pipeline expands files into samples only when this is not None.
    @property
    def list_parts(self):  # type: ignore[override]
        return self.window_parts if self.config.long_clips == "split" else None

    def sample_arrays(self) -> dict[str, ArraySpec]:
        c = self.config
        return {
            "tokens": ArraySpec((c.target_frames, c.num_mel_bins), "float16", ("frame", "mel")),
            "length": ArraySpec((), "int32"),
        }

    def static_arrays(self) -> dict[str, np.ndarray]:
        """``positions``: the (frequency row, time column) of every AST patch the projector
        cuts from the spectrogram."""
        return {"positions": self.grid}

    # --- windows --------------------------------------------------------------------------

    def output_samples(self, info: AudioInfo) -> int:
        """Samples of the file after resampling, estimated from the header."""
        return info.frames * self.config.sample_rate // info.sample_rate

    def window_parts(self, path: str) -> list[str]:
        """Split mode: names ``t=START-END`` of the file's windows, from its header only."""
        c = self.config
        info = probe(path, c.max_seconds)
        frames = num_frames(self.output_samples(info), self.size, self.shift)
        count = max(1, -(-frames // c.target_frames))
        hop = c.window_hop / c.sample_rate
        return [f"t={w * hop:.2f}-{min((w + 1) * hop, info.seconds):.2f}" for w in range(count)]

    def window_index(self, part: str) -> int:
        match = PART.fullmatch(part)
        hop = self.config.window_hop / self.config.sample_rate
        index = round(float(match.group(1)) / hop) if match else -1
        if index < 0 or abs(index * hop - float(match.group(1))) > 0.006:
            raise UsageError(f"audio part {part!r} is not a window name t=START-END of this "
                             f"config (windows every {hop:.2f} s)")
        return index

    # --- tokenize -------------------------------------------------------------------------

    def load(self, path: str, part: str | None = None) -> np.ndarray:
        """Mono waveform at ``sample_rate`` of the sample's window (float32 in [-1, 1])."""
        start = self.window_start(part)
        handle, info = open_audio(path, self.config.max_seconds)
        with handle:
            return self.load_window(handle, info, start)

    def window_start(self, part: str | None) -> int:
        """First output sample of the window ``part`` names (0 for the whole file)."""
        return 0 if part is None else self.window_index(part) * self.config.window_hop

    def load_window(self, handle: sf.SoundFile, info: AudioInfo, start: int) -> np.ndarray:
        """``load`` on a file already open (``open_audio``): only this window is decoded."""
        c = self.config
        wave = read_span(handle, info, start, start + c.window_samples, c.sample_rate,
                         c.resample_quality)
        if len(wave) == 0:
            kind = "empty_audio" if start == 0 else "truncated"
            raise SampleError(kind, f"no audio samples from {start / c.sample_rate:.2f} s on "
                              f"(the header declares {info.seconds:.2f} s)", stage="decode")
        return wave

    def log_mel(self, wave: np.ndarray) -> tuple[np.ndarray, int]:
        """The real frames of the window, at most ``target_frames``: a (num_mel_bins,
        frames) float32 log-mel (Kaldi's (frame, mel) result, transposed) and their count.
        Clips shorter than one analysis window are zero-padded to one window first. Only the
        window's samples are analysed (``load`` reads no more); padding is never computed."""
        c = self.config
        x = wave - np.float32(wave.mean(dtype=np.float64))  # AST: waveform - waveform.mean()
        if len(x) < self.size:
            x = np.concatenate([x, np.zeros(self.size - len(x), x.dtype)])
        bank = fbank(x, c.sample_rate, c.num_mel_bins, c.frame_length_ms, c.frame_shift_ms,
                     c.low_freq, c.high_freq, c.preemphasis, window_type=c.window_type)
        length = min(len(bank), c.target_frames)
        return bank[:length].T, length

    def features(self, wave: np.ndarray) -> tuple[np.ndarray, int]:
        """(num_mel_bins, target_frames) float32 log-mel, zero-padded or cut, and the number
        of real frames (AST's input before normalisation, transposed)."""
        c = self.config
        real, length = self.log_mel(wave)
        grid = np.zeros((c.num_mel_bins, c.target_frames), np.float32)  # AST: ZeroPad2d
        grid[:, :length] = real
        return grid, length

    def tokenize_file(self, path: str, part: str | None = None) -> dict[str, np.ndarray]:
        self.check_part(part)
        return self.tokenize_wave(self.load(path, part))

    def tokenize_parts(self, path: str, parts: Sequence[str | None]
                       ) -> list[dict[str, np.ndarray] | SampleError]:
        """Windows of one file, read by :meth:`load_parts` (one open for the run)."""
        for part in parts:
            self.check_part(part)
        return [wave if isinstance(wave, SampleError) else self.tokenize_wave(wave)
                for wave in self.load_parts(path, parts)]

    def load_parts(self, path: str, parts: Sequence[str | None]
                   ) -> Iterator[np.ndarray | SampleError]:
        """``load(path, part)`` for each part in order, or the SampleError it raises: the
        file is opened and its header checked once, then each window's span is decoded
        after a seek, as ``load`` decodes it (so the samples are the same).

        After a window fails, the next one opens the file afresh, as a lone ``load`` would:
        a decoder that failed mid-stream may not decode the following span the same way,
        and a file that cannot be opened gives every window the error opening gives.
        """
        starts = [self.window_start(part) for part in parts]  # bad names stop the run first
        opened: tuple[sf.SoundFile, AudioInfo] | None = None
        try:
            for start in starts:
                try:
                    opened = opened or open_audio(path, self.config.max_seconds)
                    wave = self.load_window(*opened, start)
                except SampleError as exc:
                    if opened is not None:
                        opened[0].close()
                    opened = None
                    yield exc
                    continue
                yield wave
        finally:
            if opened is not None:
                opened[0].close()

    def check_part(self, part: str | None) -> None:
        if part is not None and self.config.long_clips != "split":
            raise UsageError(f"audio part {part!r} given but long_clips is "
                             f"{self.config.long_clips!r}")

    def tokenize_wave(self, wave: np.ndarray) -> dict[str, np.ndarray]:
        """One window's waveform -> its arrays (``tokenize_file`` after the reader)."""
        c = self.config
        real, length = self.log_mel(wave)
        # (x - mean) / (2 std) in float32 and one cast to float16, over the real frames only
        # (the values the patch layout stored, bit for bit); padding frames are a constant.
        # The cast and the transpose to (frame, mel) are one pass (numpy's float16 cast is
        # vectorised where the CPU has F16C, faster than to_float16 there).
        normalised = (real - np.float32(c.mean)) / np.float32(2.0 * c.std)
        tokens = np.empty((c.target_frames, c.num_mel_bins), np.float16)
        np.copyto(tokens[:length], normalised.T, casting="same_kind")
        tokens[length:] = self.pad_value
        return {"tokens": tokens, "length": np.int32(length)}


def to_float16(x: np.ndarray) -> np.ndarray:
    """``x.astype(np.float16)`` for float32 ``x``, bit for bit.

    Faster than numpy's cast where numpy converts one element at a time (~5 ns each); numpy
    2 builds on CPUs with F16C vectorise the cast and are about 3x faster than this (the
    tokenizer uses numpy's cast). Values whose float16 is a normal number are rounded here with integer
    arithmetic (round to nearest even, as numpy does); zeros, subnormals, overflow and NaN
    go through ``astype``.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(np.uint32)
    magnitude = bits & np.uint32(0x7FFFFFFF)
    half = magnitude >> np.uint32(13)
    half &= np.uint32(1)  # ties to even: add 0xFFF plus the lowest kept mantissa bit
    half += magnitude
    half -= np.uint32(0x38000000 - 0xFFF)  # exponent bias 127 -> 15 (wraps below 2**-14)
    half >>= np.uint32(13)
    sign = bits >> np.uint32(16)
    sign &= np.uint32(0x8000)
    half |= sign
    out = half.astype(np.uint16).view(np.float16)
    # float16 normal range after rounding, [2**-14, 65504], is float32 bits in [lo, hi]
    lo, hi = np.uint32(0x38800000), np.uint32(0x477FEFFF)
    if magnitude.size and not (magnitude.min() >= lo and magnitude.max() <= hi):
        other = (magnitude < lo) | (magnitude > hi)
        with np.errstate(over="ignore"):
            out[other] = x[other].astype(np.float16)
    return out


def statistics_overrides(tokenizer: "AudioTokenizer", paths: Iterable[str]) -> dict:
    """Config overrides that normalise with the data set's own statistics."""
    mean, std = dataset_statistics(paths, tokenizer.config)
    return {"mean": mean, "std": std}


def dataset_statistics(paths: Iterable[str], config: AudioConfig | None = None,
                       **overrides) -> tuple[float, float]:
    """Mean and standard deviation of the log-mel fbank over ``paths``, for ``--set mean=..
    --set std=..`` (tokens are then ``(fbank - mean) / (2 * std)``).

    Every real frame of every window the tokenizer would make (the first window per file
    with ``long_clips="cut"``, all windows with ``"split"``) counts once, pooled over all
    files and mel bins, in float64; padding frames are left out (AST's own script averaged
    per-batch statistics of padded inputs). Files that fail to read are skipped.
    """
    if config is None:
        config = AudioConfig(**overrides)
    elif overrides:
        raise UsageError("give either a config or overrides, not both")
    tokenizer = AudioTokenizer(config)
    count, total, squares = 0, 0.0, 0.0
    for path in paths:
        # per window: one unreadable window does not hide the file's others
        for wave in tokenizer.load_parts(path, _statistics_parts(tokenizer, path)):
            if isinstance(wave, SampleError):
                continue
            real = tokenizer.log_mel(wave)[0].astype(np.float64)
            count += real.size
            total += float(real.sum())
            squares += float(np.square(real).sum())
    if count == 0:
        raise UsageError("no readable audio among the given files")
    mean = total / count
    return mean, math.sqrt(max(squares / count - mean * mean, 0.0))


def _statistics_parts(tokenizer: "AudioTokenizer", path: str) -> Sequence[str | None]:
    """The windows of ``path`` the tokenizer would make; none when its header is unreadable."""
    if tokenizer.config.long_clips != "split":
        return [None]
    try:
        return tokenizer.window_parts(path)
    except SampleError:
        return []
