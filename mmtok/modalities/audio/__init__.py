"""The ``audio`` modality: ``tokenizer.py`` reads (soundfile + soxr) and stores the normalised
Kaldi log-mel filterbank computed in ``fbank.py``; ``projector.py`` cuts AST's patches from it
and is AST's linear patch embedding; ``demo.py`` writes the demo's tones and noise."""

from ..base import DemoSpec, ModalitySpec, register_modality
from .tokenizer import (
    AUDIOSET_MEAN,
    AUDIOSET_STD,
    EXTENSIONS,
    PRESETS,
    STORE_LAYOUT,
    AudioConfig,
    AudioTokenizer,
    dataset_statistics,
    to_float16,
)

__all__ = ["AUDIOSET_MEAN", "AUDIOSET_STD", "EXTENSIONS", "PRESETS", "STORE_LAYOUT",
           "AudioConfig", "AudioTokenizer", "dataset_statistics", "to_float16"]

register_modality(ModalitySpec(
    name="audio", config_class=AudioConfig, tokenizer=AudioTokenizer, extensions=EXTENSIONS,
    help="audio (WAV/FLAC/OGG/MP3 -> 16 kHz Kaldi log-mel 1024 x 128, stored; AST 16x16/10 "
         "patches cut at embed)",
    projector="mmtok.modalities.audio.projector:build", inputs=("tokens", "length"),
    presets=PRESETS,
    tiny_options={"num_mel_bins": 32, "target_frames": 48},
    demo=DemoSpec("mmtok.modalities.audio.demo:make_demo_audio",
                  "metatransformer:depth=2,width=192,heads=3"),
    docs="docs/modalities/audio.md",
))
