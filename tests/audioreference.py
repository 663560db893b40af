"""The audio reference of mmtok 0.1.0 before the spectrogram store: AST patches as that
version stored them, and their features, for a few deterministic clips.

``tests/data/audio_patches_v1.npz`` was written by ``python tests/audioreference.py`` at
commit 29efb49 (the last one whose audio stores held patches); tests/modalities/
test_audio_spectrogram.py checks that today's spectrogram stores, cut into patches at embed
time, give the same patches and features. Regenerating it with a later version would test
nothing: keep the file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REFERENCE = Path(__file__).resolve().parent / "data" / "audio_patches_v1.npz"
ENCODER = "metatransformer:depth=2,width=64,heads=4"
# (name, seconds, sample rate, channels): padded, exactly one window, cut, resampled stereo
CLIPS = [("short", 0.45, 16000, 1), ("exact", 1.295, 16000, 1), ("long", 2.0, 16000, 1),
         ("stereo44k", 0.9, 44100, 2)]
CONFIGS = {"tiny": {"target_frames": 128, "num_mel_bins": 32},
           "wide": {"target_frames": 96, "num_mel_bins": 128, "mean": -5.0, "std": 3.0}}


def write_clips(folder: Path) -> list[Path]:
    """Speech-like clips (harmonics of a gliding pitch, an envelope, a little noise) in
    one class folder, the same bytes on every run."""
    rng = np.random.default_rng(1234)
    paths = []
    for name, seconds, rate, channels in CLIPS:
        t = np.arange(int(seconds * rate)) / rate
        pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(pitch) / rate
        x = sum(0.1 / h * np.sin(h * phase) for h in range(1, 12))
        x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))
        data = np.stack([x, np.roll(x, 5)], axis=1) if channels == 2 else x
        path = folder / "speech" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, data.astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def main(folder: Path) -> None:
    import mmtok

    write_clips(folder / "clips")
    arrays = {}
    for name, options in CONFIGS.items():
        tokens, features = folder / f"{name}.zarr", folder / f"{name}-f.zarr"
        mmtok.tokenize(folder / "clips", tokens, "audio", progress=False, **options)
        mmtok.embed(tokens, features, ENCODER, pool_how="cls+mean+max", progress=False)
        store, feats = mmtok.open_store(tokens), mmtok.open_store(features)
        arrays[f"{name}_patches"] = store.group["tokens"][:]
        arrays[f"{name}_valid_columns"] = store.group["valid_columns"][:]
        arrays[f"{name}_length"] = store.group["length"][:]
        arrays[f"{name}_features"] = feats.group["features"][:]
    REFERENCE.parent.mkdir(exist_ok=True)
    np.savez_compressed(REFERENCE, **arrays)


if __name__ == "__main__":
    import tempfile

    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
