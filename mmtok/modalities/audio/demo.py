"""Demo data for audio: one-second clips of three sound classes (low tones, high tones,
noise) as WAV and FLAC. Same seed, same files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SOUNDS = ("low", "high", "noise")


def make_demo_audio(folder: str | os.PathLike, per_class: int = 20, seed: int = 0,
                    rate: int = 16000) -> Path:
    """Write ``per_class`` one-second clips of each sound class (WAV and FLAC): low tones
    (150-400 Hz), high tones (2-4 kHz) and white noise, at random levels."""
    import soundfile

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    time = np.arange(rate) / rate
    for sound in SOUNDS:
        (folder / sound).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            level = rng.uniform(0.05, 0.5)
            if sound == "noise":
                clip = rng.normal(scale=level / 2, size=rate)
            else:
                low, high = (150, 400) if sound == "low" else (2000, 4000)
                clip = level * np.sin(2 * np.pi * rng.uniform(low, high) * time)
            extension = ".wav" if i % 2 else ".flac"
            soundfile.write(folder / sound / f"{i:03d}{extension}", clip.astype(np.float32), rate)
    return folder
