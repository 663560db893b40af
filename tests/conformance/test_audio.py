"""Conformance of audio (32 mel bins, 48 frames), from WAV and FLAC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
from hostilefiles import float_wav, tone, wav_bytes, wav_length_bomb, wav_with_rate

from .base import Malformed, TokenizerConformance

RATE = 16000


def clip(label: int, index: int) -> np.ndarray:
    """0.2 to 0.3 s (shorter than every padded length below): a low tone for class 0, a
    high one for class 1, with a little noise."""
    rng = np.random.default_rng(index)
    t = np.arange(int(RATE * (0.2 + 0.1 * rng.random()))) / RATE
    wave = 0.3 * np.sin(2 * np.pi * (300 if label == 0 else 3000) * t)
    return (wave + 0.02 * rng.normal(size=len(t))).astype(np.float32)


def cut_flac(path: Path) -> None:
    soundfile.write(path, tone(1.0), RATE, format="FLAC")
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


class TestAudio(TokenizerConformance):
    modality = "audio"
    extension = ".wav"
    # the same clips padded to 64 and 96 frames instead of 48: more masked patches, and
    # every feature must stay what it was
    padding_variants = ({"target_frames": 64}, {"target_frames": 96})

    def write_sample(self, folder: Path, stem: str, label: int, index: int) -> Path:
        path = folder / f"{stem}{('.wav', '.flac')[index % 2]}"
        soundfile.write(path, clip(label, index), RATE)
        return path

    def malformed_inputs(self) -> dict[str, Malformed]:
        return {
            # a FLAC cut mid-frame loses sync (a cut WAV is a shorter valid clip)
            "cut.flac": Malformed(cut_flac, "decode_error", "truncated"),
            "header_only.wav": Malformed(lambda p: p.write_bytes(wav_bytes(tone()[:0])),
                                         "empty_audio", "truncated"),
            "nan.wav": Malformed(float_wav(float("nan")), "nan_audio", "nonfinite"),
            "inf.wav": Malformed(float_wav(float("inf")), "nan_audio", "nonfinite"),
            # 4 GB declared, 0.01 s present: only the window a sample needs is decoded, so
            # it is a short valid clip
            "length_bomb.wav": Malformed(lambda p: p.write_bytes(wav_length_bomb()), None,
                                         "absurd_size"),
            # 160 samples at 2 GHz are 80 ns of sound: not one sample at 16 kHz
            "rate_absurd.wav": Malformed(lambda p: p.write_bytes(wav_with_rate(2_000_000_000)),
                                         "empty_audio", "absurd_size"),
        }
